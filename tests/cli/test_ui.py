"""`discovery ui`, `archive report` and `archive plot` on real runs, checked in a real headless Chromium.

The runs are made here with the CLI (fake LLM over HTTP, process sandbox, real SQLite). One candidate's
code, the reply that wrote it, another's failure text and output tail all carry a `<script>`, an
`onerror` attribute and a `javascript:` link that would set `window.__pwned` if the browser ran them.
Screenshots go to $DISCOVERY_ARTEFACTS/ui (default bench/out/ui).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import sqlite3
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from tests.browser import Browser, chromium_path
from tests.cli.test_cli import cli, start_cli, wait_for_calls
from tests.fake_llm import FakeLLMServer

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
PAYLOAD = (
    "<script>window.__pwned='script'</script>"
    "<img src=x onerror=\"window.__pwned='onerror'\">"
    "<a href=\"javascript:window.__pwned='link'\">click me</a>"
)
INJECTED_REPLY = (
    f"I improved it {PAYLOAD}\n```python\ndef solve():\n    # {PAYLOAD}\n"
    f"    s = '''</pre>{PAYLOAD}'''\n    return 2.5\n```"
)
FAILING_REPLY = (
    "```python\ndef solve():\n    import sys\n"
    f"    print('''{PAYLOAD}''', file=sys.stderr)\n    raise ValueError('''{PAYLOAD}''')\n```"
)
# What a page's own script could have left behind if any injected markup had run.
INJECTION_PROBE = """(() => ({
  pwned: window.__pwned === undefined ? null : String(window.__pwned),
  scripts: [...document.scripts].map(s => s.getAttribute('src')),
  handlers: [...document.querySelectorAll('*')].filter(el => [...el.attributes].some(a => a.name.toLowerCase().startsWith('on'))).length,
  jsLinks: [...document.querySelectorAll('a[href]')].filter(a => a.getAttribute('href').trim().toLowerCase().startsWith('javascript')).length,
  imgs: document.images.length,
  shown: document.body.innerText.includes("<script>window.__pwned='script'</script>"),
}))()"""


def solve(x: float) -> str:
    return f"```python\ndef solve():\n    return {x}\n```"


def artefacts() -> Path:
    """Where screenshots and reports are kept after the test (CI uploads this folder)."""
    base = Path(os.environ.get("DISCOVERY_ARTEFACTS", ROOT / "bench" / "out"))
    path = base / "ui"
    path.mkdir(parents=True, exist_ok=True)
    return path


def run_args(task: Path, server: FakeLLMServer, name: str, budget: int, *extra: str) -> list[str]:
    return [
        "run", str(task), "--model", "openai/fake", "--api-base", server.api_base, "--budget", str(budget),
        "--sandbox", "process", "--name", name, "--llm-concurrency", "1", "--eval-slots", "1", *extra,
    ]  # fmt: skip


@pytest.fixture(scope="module")
def archive(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two finished runs: r1 (dgm, with the injection candidates) and r2 (best-of-n)."""
    base = tmp_path_factory.mktemp("ui")
    task = base / "toy_task"
    shutil.copytree(ROOT / "tests" / "data" / "toy_task", task)
    root = base / "archive"
    script = [solve(1.0), INJECTED_REPLY, "no code here", FAILING_REPLY, solve(2.75)]
    with FakeLLMServer(script, default=solve(0.25)) as server:
        cli(*run_args(task, server, "r1", 6), archive=root, check=True)
    with FakeLLMServer([solve(0.5), solve(4.0)], default=solve(1.5)) as server:
        cli(*run_args(task, server, "r2", 3, "--strategy", "best-of-n"), archive=root, check=True)
    return root


def count(root: Path, run: str, where: str = "1") -> int:
    db = sqlite3.connect(f"file:{root / run / 'archive.sqlite'}?mode=ro", uri=True)
    try:
        return db.execute(f"SELECT COUNT(*) FROM candidates WHERE {where}").fetchone()[0]
    finally:
        db.close()


def injected_id(root: Path, run: str, column: str) -> int:
    db = sqlite3.connect(f"file:{root / run / 'archive.sqlite'}?mode=ro", uri=True)
    try:
        return db.execute(
            f"SELECT id FROM candidates WHERE {column} LIKE '%__pwned%' ORDER BY id"
        ).fetchone()[0]
    finally:
        db.close()


def start_ui(root: Path, *args: str) -> tuple[subprocess.Popen, str]:
    """`discovery ui --port 0` in a child process, and the URL it announces."""
    proc = start_cli("ui", "--port", "0", *args, archive=root)
    line = proc.stdout.readline()
    if " at http" not in line:
        proc.kill()
        raise AssertionError(f"ui did not start: {line}{proc.communicate()[1]}")
    return proc, line.split(" at ", 1)[1].split()[0]


@pytest.fixture(scope="module")
def ui(archive: Path) -> Iterator[str]:
    proc, url = start_ui(archive)
    yield url
    proc.terminate()
    proc.communicate(timeout=10)


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    binary = chromium_path()
    if binary is None:
        pytest.skip("no chromium on PATH: apt-get install -y chromium (scripts/browser-deps does it as root)")
    with Browser(binary) as b:
        yield b


def assert_clean(b: Browser, allowed_scheme_hosts: set[str]) -> None:
    """No console error or exception, and every request went to an allowed scheme://host."""
    assert b.problems() == [], b.problems()
    assert b.dialogs() == []
    for url in b.requested_urls():
        parts = urlsplit(url)
        assert f"{parts.scheme}://{parts.netloc}" in allowed_scheme_hosts, f"request to {url}"


def assert_nothing_ran(b: Browser, our_scripts: list[str]) -> None:
    probe = b.eval(INJECTION_PROBE)
    assert probe["pwned"] is None, probe
    assert probe["scripts"] == our_scripts, probe
    assert probe["handlers"] == 0 and probe["jsLinks"] == 0 and probe["imgs"] == 0, probe
    assert probe["shown"], "the injected text should be shown, escaped, as text"


def test_explorer_pages_in_chromium(archive: Path, ui: str, browser: Browser) -> None:
    origin = {ui.rstrip("/")}
    shots = artefacts()

    browser.open(ui)
    assert_clean(browser, origin)
    runs = browser.eval(
        "[...document.querySelectorAll('table.runs tbody tr')].map(r => r.cells[1].innerText)"
    )
    assert sorted(runs) == ["r1", "r2"]
    browser.screenshot(shots / "runs.png")

    n = count(archive, "r1")
    browser.open(ui + "run/r1")
    assert_clean(browser, origin)
    assert browser.eval("document.querySelectorAll('svg.lineage circle.node').length") == n
    assert browser.eval("document.querySelectorAll('svg.curve circle.pt').length") == n
    assert browser.eval("document.querySelectorAll('svg.lineage .edge.champ').length") >= 1
    assert browser.eval("document.querySelectorAll('svg.lineage circle.node.fail').length") == count(
        archive, "r1", "status='failed'"
    )
    assert browser.eval("document.querySelectorAll('svg.lineage circle.node.rej').length") == count(
        archive, "r1", "status LIKE 'rejected%'"
    )
    assert "failed" in browser.eval("document.body.innerText") and "budget spent" in browser.eval(
        "document.body.innerText"
    )
    assert_nothing_ran(browser, ["/static/app.js"])
    browser.screenshot(shots / "run.png", full_page=True)

    for x in ("cost", "time"):
        browser.open(ui + f"run/r1?x={x}")
        assert_clean(browser, origin)
        assert browser.eval(f"document.querySelectorAll('svg.curve[data-x={x}] circle.pt').length") == n

    best = browser.eval("document.querySelector('svg.lineage circle.node.champion').dataset.id")
    browser.open(ui + f"run/r1/c/{best}")
    assert_clean(browser, origin)
    diff = browser.eval("document.querySelector('pre.diff').innerText")
    assert "+    return 2.75" in diff or "+    return" in diff, diff
    assert browser.eval("document.querySelectorAll('pre.diff .add').length") >= 1
    assert browser.eval("document.querySelectorAll('pre.code span.kw').length") >= 1  # highlighted
    assert "# Task" in browser.eval("document.body.textContent")  # the prompt
    browser.screenshot(shots / "candidate.png", full_page=True)

    browser.open(ui + f"run/r1/c/{best}?against=1")
    assert_clean(browser, origin)
    headings = browser.eval("[...document.querySelectorAll('h3')].map(h => h.innerText)")
    assert any("chosen #1" in h for h in headings), headings

    browser.open(ui + "compare?run=r1&run=r2")
    assert_clean(browser, origin)
    assert browser.eval("document.querySelectorAll('svg.compare path.series').length") == 2
    browser.screenshot(shots / "compare.png")


def test_injected_markup_runs_nothing(archive: Path, ui: str, browser: Browser) -> None:
    origin = {ui.rstrip("/")}
    for column in ("code", "failure"):
        cid = injected_id(archive, "r1", column)
        browser.open(ui + f"run/r1/c/{cid}")
        browser.eval("document.querySelectorAll('details').forEach(d => d.open = true)")
        assert_clean(browser, origin)
        assert_nothing_ran(browser, ["/static/app.js"])
        browser.screenshot(shots_path := artefacts() / f"injection-{column}.png", full_page=True)
        assert shots_path.stat().st_size > 0
    # the failure text also shows in the run page's table and the tree's tooltips
    browser.open(ui + "run/r1")
    assert_nothing_ran(browser, ["/static/app.js"])


# An agent whose model answers with markup: its messages and replies are on the candidate page.
AGENT_CHILD = (
    "```python\ndef forward(question: str) -> str:\n"
    '    return llm.chat([{"role": "user", "content": question + "\\n\\nOnly the number."}], temperature=0.0)\n```'
)


@pytest.fixture(scope="module")
def agent_archive(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real math_agent run (gateway, process sandbox) whose agent model replies with the injection payload."""
    base = tmp_path_factory.mktemp("agents")
    task = base / "math_agent"
    shutil.copytree(ROOT / "tasks" / "math_agent", task)
    root = base / "archive"
    with (
        FakeLLMServer([], default=AGENT_CHILD) as mutation,
        FakeLLMServer([], default=f"42 {PAYLOAD}") as agent,
    ):
        args = run_args(
            task, mutation, "agents", 1, "--reply-format", "block", "--agent-model", "openai/fake"
        )
        cli(*args, "--agent-api-base", agent.api_base, archive=root, check=True)
    return root


def agent_calls_of(root: Path, run: str, candidate_id: int) -> int:
    db = sqlite3.connect(f"file:{root / run / 'archive.sqlite'}?mode=ro", uri=True)
    try:
        return db.execute(
            "SELECT COUNT(*) FROM agent_calls WHERE candidate_id=?", (candidate_id,)
        ).fetchone()[0]
    finally:
        db.close()


def test_agent_calls_show_on_the_candidate_page_as_text(agent_archive: Path, browser: Browser) -> None:
    calls = agent_calls_of(agent_archive, "agents", 2)
    assert calls > 0 and count(agent_archive, "agents") == 2
    proc, url = start_ui(agent_archive)
    try:
        browser.open(url + "run/agents/c/2")
        origin = {url.rstrip("/")}
        assert_clean(browser, origin)
        assert browser.eval("document.querySelectorAll('details.agent-call').length") == calls
        assert browser.eval("document.querySelectorAll('details.agent-call[open]').length") == 0  # collapsed
        total = browser.eval("[...document.querySelector('table.agent-totals').rows].pop().innerText")
        assert total.split("\t")[:3] == ["all", "", str(calls)], total
        browser.eval("document.querySelectorAll('details').forEach(d => d.open = true)")
        assert "Only the number." in browser.eval("document.querySelector('details.agent-call').innerText")
        assert_nothing_ran(browser, ["/static/app.js"])
        browser.screenshot(artefacts() / "agent-calls.png", full_page=True)
    finally:
        proc.terminate()
        proc.communicate(timeout=10)
    out = artefacts() / "report-agents.html"
    cli("archive", "report", "agents", "-o", str(out), archive=agent_archive, check=True)
    browser.open(out.as_uri() + "#c2")
    assert_clean(browser, {"file://"})
    shown = browser.eval("document.querySelectorAll('#c2 details.agent-call').length")
    assert shown == min(calls, 40)
    browser.eval("document.querySelectorAll('details').forEach(d => d.open = true)")
    assert_nothing_ran(browser, [])


def test_report_works_offline(archive: Path, browser: Browser) -> None:
    out = artefacts() / "report.html"
    made = cli("archive", "report", "r1", "-o", str(out), archive=archive, check=True)
    assert "report.html" in made.stdout
    text = out.read_text()
    assert not any(f'{attr}="{scheme}' in text for attr in ("src", "href") for scheme in ("http", "//")), (
        "an external link"
    )
    n = count(archive, "r1")

    browser.open(out.as_uri())
    assert_clean(browser, {"file://"})
    assert browser.eval("document.querySelectorAll('svg.lineage circle.node').length") == n
    assert browser.eval("document.querySelectorAll('svg.curve[data-x=calls] circle.pt').length") == n
    assert browser.eval("document.querySelectorAll('section.cand').length") == n
    assert_nothing_ran(browser, [])
    browser.screenshot(artefacts() / "report.png")

    cid = injected_id(archive, "r1", "code")
    browser.open(out.as_uri() + f"#c{cid}")
    assert_clean(browser, {"file://"})
    shown = browser.eval(f"getComputedStyle(document.getElementById('c{cid}')).display")
    assert shown == "block"
    assert browser.eval(f"document.querySelectorAll('#c{cid} pre.diff .add').length") >= 1
    assert_nothing_ran(browser, [])
    browser.screenshot(artefacts() / "report-candidate.png")

    small = artefacts() / "report-top2.html"
    made = cli("archive", "report", "r1", "--top", "2", "-o", str(small), archive=archive, check=True)
    sections = small.read_text().count('<section class="cand"')
    assert 2 <= sections < n and f"{sections} of {n} candidates in full" in made.stdout, made.stdout


def test_explorer_refreshes_while_a_run_goes_on(tmp_path: Path, toy_task: Path, browser: Browser) -> None:
    root = tmp_path / "archive"
    with FakeLLMServer([], latency_s=1.0, default=solve(1.0)) as server:
        run = start_cli(*run_args(toy_task, server, "live", 5, "--strategy", "best-of-n"), archive=root)
        try:
            wait_for_calls(root, "live", 1)
            proc, url = start_ui(root, "live")
            try:
                browser.open(url + "run/live")
                assert browser.eval("document.body.dataset.poll") == "/run/live/version"
                before = browser.eval("document.querySelectorAll('svg.lineage circle.node').length")
                browser.wait_for("Page.loadEventFired", timeout=30)  # the page reloads itself on a change
                assert run.wait(timeout=120) == 0
                deadline = time.monotonic() + 30
                while browser.eval("document.body.dataset.poll") is not None and time.monotonic() < deadline:
                    browser.wait_for("Page.loadEventFired", timeout=30)
                after = browser.eval("document.querySelectorAll('svg.lineage circle.node').length")
                assert after == count(root, "live") > before
                assert "budget spent" in browser.eval("document.body.innerText")
            finally:
                proc.terminate()
                proc.communicate(timeout=10)
        finally:
            if run.poll() is None:
                run.kill()
            run.communicate()


def digest(run_dir: Path) -> str:
    return hashlib.sha256((run_dir / "archive.sqlite").read_bytes()).hexdigest()


def test_server_is_read_only_and_strict(archive: Path, ui: str) -> None:
    before = digest(archive / "r1")
    with urllib.request.urlopen(ui + "run/r1") as reply:
        csp = reply.headers["Content-Security-Policy"]
        body = reply.read().decode()
    assert "script-src 'self'" in csp and "default-src 'none'" in csp
    assert "window.__pwned" in body and "<script>window" not in body and 'onerror="' not in body
    for method in ("POST", "PUT", "DELETE"):
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(urllib.request.Request(ui + "run/r1", data=b"x", method=method))
        assert refused.value.code == 405
    rebound = urllib.request.Request(ui, headers={"Host": "evil.example:80"})
    with pytest.raises(urllib.error.HTTPError) as wrong_host:
        urllib.request.urlopen(rebound)
    assert wrong_host.value.code == 421
    with pytest.raises(urllib.error.HTTPError) as missing:
        urllib.request.urlopen(ui + "run/r1/c/999")
    assert missing.value.code == 404 and b"no candidate 999" in missing.value.read()
    assert digest(archive / "r1") == before


def test_ui_warns_off_loopback_and_refuses_a_busy_port(archive: Path, ui: str) -> None:
    port = urlsplit(ui).port
    busy = cli("ui", "--port", str(port), archive=archive, timeout=30)
    assert busy.returncode == 2 and "pick another --port" in busy.stderr, busy.stderr
    proc = start_cli("ui", "--host", "0.0.0.0", "--port", "0", archive=archive)
    try:
        first = proc.stdout.readline()
        assert "warning" in first and "not loopback" in first
    finally:
        proc.terminate()
        proc.communicate(timeout=10)


def test_plot_draws_several_runs(archive: Path, tmp_path: Path) -> None:
    pytest.importorskip("matplotlib", reason="archive plot needs matplotlib (the dev extra)")
    for x in ("calls", "cost", "time"):
        out = tmp_path / f"curve-{x}.png"
        cli("archive", "plot", "r1", "r2", "-o", str(out), "--x", x, archive=archive, check=True)
        assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    shutil.copy(tmp_path / "curve-calls.png", artefacts() / "curve.png")
    bad = cli("archive", "plot", "r1", "-o", str(tmp_path / "curve.txt"), archive=archive)
    assert bad.returncode == 2 and ".png" in bad.stderr
