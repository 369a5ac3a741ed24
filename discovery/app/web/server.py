"""`discovery ui`: a read-only HTTP server over run archives (standard library only).

Each request opens the archives it needs with a read-only SQLite URI and closes them before it
answers, so the server never writes to an archive and never holds one open between requests.
Every answer carries a Content-Security-Policy that allows only this server's own script and
stylesheet: nothing inline runs, and the browser sends no request to any other host.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import logging
import re
import sqlite3
import threading
from collections import OrderedDict
from collections.abc import Callable
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

from discovery.app.web import pages
from discovery.app.web.grid import grid_of
from discovery.archive import ARCHIVE_FILE, views
from discovery.errors import UserError

log = logging.getLogger(__name__)

CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
    "form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
)
HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
    "Cross-Origin-Resource-Policy": "same-origin",
}
STATIC = {"style.css": "text/css; charset=utf-8", "app.js": "text/javascript; charset=utf-8"}
RUN_PATH = re.compile(r"^/run/([^/]+)(?:/(version|c/(\d+)))?/?$")


def is_loopback(host: str) -> bool:
    """Whether host names this machine only (127.0.0.0/8, ::1 or localhost)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@dataclasses.dataclass(frozen=True)
class Catalogue:
    """Which runs the server shows: the given run folders, or every run under the archive root."""

    root: Path
    fixed: tuple[Path, ...] = ()

    def runs(self) -> dict[str, Path]:
        """Run name -> folder, looked up afresh on each request so new runs appear."""
        folders = self.fixed or tuple(p.parent for p in sorted(self.root.glob(f"*/{ARCHIVE_FILE}")))
        return {p.name: p for p in folders}

    def run(self, name: str) -> Path:
        found = self.runs().get(name)
        if found is None:
            raise UserError(f"no run {name!r} here")
        return found


class PageCache:
    """Rendered pages keyed by request and the archive versions they were made from (LRU, thread-safe).

    An archive's version (its last event's number) changes with every write, so a cached page is
    served only while the archive is exactly as it was: repeated views of a 10,000-candidate run
    cost one indexed query instead of reading every candidate again.
    """

    def __init__(self, size: int = 32):
        self.size = size
        self.pages: OrderedDict[tuple[str, str], Answer] = OrderedDict()
        self.lock = threading.Lock()

    def get(self, key: tuple[str, str]) -> Answer | None:
        with self.lock:
            answer = self.pages.get(key)
            if answer is not None:
                self.pages.move_to_end(key)
            return answer

    def put(self, key: tuple[str, str], answer: Answer) -> None:
        with self.lock:
            self.pages[key] = answer
            while len(self.pages) > self.size:
                self.pages.popitem(last=False)


@dataclasses.dataclass
class Answer:
    """A response: status, content type and body."""

    status: int
    body: bytes
    content_type: str = "text/html; charset=utf-8"


def html(text: str, status: int = 200) -> Answer:
    return Answer(status, text.encode())


def route(catalogue: Catalogue, target: str, cache: PageCache | None = None) -> Answer:
    """The answer to a GET of target (path and query); run and candidate pages come from cache when unchanged."""
    parts = urlsplit(target)
    path, query = unquote(parts.path), parse_qs(parts.query)
    links = pages.Links()
    if path == "/":
        overviews, unreadable = [], []
        for name, folder in catalogue.runs().items():
            try:
                with views.read_only(folder) as db:
                    overviews.append(views.run_overview(db, name))
            except (UserError, sqlite3.Error) as exc:
                log.warning("skipping %s: %s", folder, exc)
                unreadable.append((name, str(exc)))
        overviews.sort(key=lambda o: o["created_at"] or 0, reverse=True)
        return html(pages.runs_page(overviews, links, unreadable))
    if path == "/version":
        total = 0
        for folder in catalogue.runs().values():
            try:
                with views.read_only(folder) as db:
                    total += views.version_of(db)
            except (UserError, sqlite3.Error):
                continue
        return Answer(200, str(total).encode(), "text/plain; charset=utf-8")
    if path.startswith("/static/"):
        name = path.removeprefix("/static/")
        if name not in STATIC:
            return html(pages.error_page(404, "no such file"), 404)
        return Answer(200, pages.static_text(name).encode(), STATIC[name])
    if path == "/compare":
        x = _axis(query)
        series = []
        for name in query.get("run", []):
            with views.read_only(catalogue.run(name)) as db:
                series.append((name, views.candidate_points(db)))
        if not series:
            raise UserError("select at least one run to compare")
        return html(pages.compare_page(series, x, links))
    match = RUN_PATH.match(path)
    if not match:
        return html(pages.error_page(404, f"nothing at {path}"), 404)
    name, sub, cid = match.groups()
    with views.read_only(catalogue.run(name)) as db:
        version = str(views.version_of(db))
        if sub == "version":
            return Answer(200, version.encode(), "text/plain; charset=utf-8")
        key = (target, version)
        cached = cache.get(key) if cache else None
        if cached is not None:
            return cached
        if cid is not None:
            against = _int(query, "against")
            answer = html(pages.candidate_page(views.candidate_view(db, int(cid), against), name, links))
        else:
            view = views.run_view(db, name)
            view["grid"] = grid_of(db, view["config"])
            answer = html(pages.run_page(view, _axis(query), links))
    if cache is not None:
        cache.put(key, answer)
    return answer


def _axis(query: dict[str, list[str]]) -> str:
    x = (query.get("x") or ["calls"])[0]
    if x not in pages.AXES:
        raise UserError(f"x must be one of {', '.join(pages.AXES)}, not {x!r}")
    return x


def _int(query: dict[str, list[str]], key: str) -> int | None:
    raw = (query.get(key) or [""])[0].strip()
    if not raw:
        return None
    if not raw.isdigit():
        raise UserError(f"{key} must be a candidate id, not {raw!r}")
    return int(raw)


def make_handler(
    catalogue: Catalogue, allowed_hosts: frozenset[str], cache: PageCache
) -> type[BaseHTTPRequestHandler]:
    """A request handler class bound to one catalogue and its page cache (no module-global state)."""

    class Handler(BaseHTTPRequestHandler):
        server_version = "discovery-ui"
        sys_version = ""

        def _send(self, answer: Answer, head_only: bool = False) -> None:
            self.send_response(answer.status)
            self.send_header("Content-Type", answer.content_type)
            self.send_header("Content-Length", str(len(answer.body)))
            for key, value in HEADERS.items():
                self.send_header(key, value)
            self.end_headers()
            if not head_only:
                self.wfile.write(answer.body)

        def _answer(self) -> Answer:
            host = (self.headers.get("Host") or "").lower()
            if allowed_hosts and host not in allowed_hosts:
                # A page on another site that rebinds its DNS name to 127.0.0.1 must not read archives.
                return html(pages.error_page(421, f"unexpected Host header {host!r}"), 421)
            try:
                return route(catalogue, self.path, cache)
            except UserError as exc:
                return html(pages.error_page(404, str(exc)), 404)
            except Exception as exc:  # one broken archive must not take the server down
                log.exception("error serving %s", self.path)
                return html(pages.error_page(500, f"{type(exc).__name__}: {exc}"), 500)

        def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
            self._send(self._answer())

        def do_HEAD(self) -> None:  # noqa: N802
            self._send(self._answer(), head_only=True)

        def _refuse(self) -> None:
            self._send(html(pages.error_page(405, "this server is read-only"), HTTPStatus.METHOD_NOT_ALLOWED))

        do_POST = do_PUT = do_DELETE = do_PATCH = _refuse  # noqa: N815

        def log_message(self, format: str, *args: object) -> None:  # noqa: A002
            log.debug("%s " + format, self.address_string(), *args)

    return Handler


def make_server(catalogue: Catalogue, host: str = "127.0.0.1", port: int = 0) -> ThreadingHTTPServer:
    """A bound (not yet serving) server; port 0 picks a free one."""
    server = ThreadingHTTPServer((host, port), BaseHTTPRequestHandler, bind_and_activate=True)
    server.daemon_threads = True
    hosts: frozenset[str] = frozenset()
    if is_loopback(host):  # the port is known only once bound (port 0 picks one)
        names = {host, "localhost", "127.0.0.1"}
        hosts = frozenset(f"{n}:{server.server_address[1]}" for n in names) | frozenset(names)
    server.RequestHandlerClass = make_handler(catalogue, hosts, PageCache())
    return server


def url_of(server: ThreadingHTTPServer) -> str:
    host, port = server.server_address[:2]
    shown = f"[{host}]" if ":" in str(host) else host
    return f"http://{shown}:{port}/"


def serve(catalogue: Catalogue, host: str, port: int, announce: Callable[[str], None]) -> None:
    """Serve until Ctrl-C; announce(text) reports the URL and warnings."""
    if not is_loopback(host):
        announce(
            f"warning: listening on {host}, not loopback: anyone who can reach this machine can read "
            "these archives (code, prompts, replies). Use --host 127.0.0.1 unless you mean it."
        )
    server = make_server(catalogue, host, port)
    announce(
        f"discovery ui: serving {len(catalogue.runs())} run(s) read-only at {url_of(server)} (Ctrl-C stops)"
    )
    try:
        server.serve_forever(poll_interval=0.5)
    except KeyboardInterrupt:
        announce("stopped")
    finally:
        server.server_close()
