"""The explorer's pages without a browser: read-only views over a store-written archive, escaping, layout."""

from __future__ import annotations

import hashlib
import html
import re
import sqlite3
from pathlib import Path

import pytest

from discovery.app.web import pages
from discovery.app.web.grid import grid_of, grid_svg
from discovery.app.web.highlight import highlight
from discovery.app.web.server import Catalogue, PageCache, route
from discovery.app.web.svg import tree_layout
from discovery.archive import SCHEMA_VERSION, Archive, views
from discovery.archive.store import USAGE_BY_MODEL
from discovery.errors import UserError

PAYLOAD = "<script>window.__pwned=1</script><img src=x onerror=\"window.__pwned=2\"><a href='javascript:alert(1)'>x</a>"


def make_run(run_dir: Path) -> Archive:
    """A small archive written by the real store: a seed, an injected child, a failure and a rejection."""
    archive = Archive.create(
        run_dir,
        {
            "task": "t",
            "task_path": "-",
            "config": {"strategy": "dgm", "budget": 5, "models": [{"name": "m"}]},
        },
    )
    archive.log_event("run_started")
    seed = archive.add_seed("def solve():\n    return 0\n", "h0")
    archive.record_evaluation(seed, "ok", -9.0, -9.0, {}, None, None, None, "process", "train", 0.1)
    usage = {"prompt_tokens": 10, "completion_tokens": 5, "cost_usd": 0.001, "latency_s": 0.5}
    call = archive.start_call("m", "diff", seed, 1, f"prompt {PAYLOAD}")
    child = archive.finish_call_with_candidate(
        call, f"reply {PAYLOAD}", usage, seed, "diff", f"def solve():\n    # {PAYLOAD}\n    return 2\n", "h1"
    )
    archive.record_evaluation(
        child, "ok", -1.0, -1.0, {PAYLOAD: 1.5}, PAYLOAD, None, PAYLOAD, "process", "train", 0.1
    )
    call = archive.start_call("m", "diff", child, 2, "p")
    bad = archive.finish_call_with_candidate(call, "r", usage, child, "diff", "def solve(:\n", "h2")
    archive.record_evaluation(
        bad, "failed", None, None, {}, None, f"SyntaxError {PAYLOAD}", None, "process", "train", 0.1
    )
    call = archive.start_call("m", "diff", child, 3, "p")
    archive.finish_call_with_candidate(
        call, "prose", usage, child, "diff", "", "h3", "rejected_unparseable", "no code"
    )
    return archive


def no_live_markup(page: str) -> None:
    """Nothing from the payload survives as markup: only our own script tag, no handlers, no javascript: links."""
    assert re.findall(r"<script[^>]*>", page) in ([], ['<script src="/static/app.js" defer>'])
    assert not re.search(r"<[^>]+\son\w+\s*=", page), "an event-handler attribute"
    assert "<img" not in page  # a "<" from the archive is always written as &lt;, so any tag here is ours
    assert not re.search(r"<a\s[^>]*href\s*=\s*[\"']?\s*javascript", page, re.IGNORECASE)


def test_views_are_read_only_and_pages_escape(tmp_path: Path) -> None:
    run_dir = tmp_path / "r"
    archive = make_run(run_dir)
    before = hashlib.sha256((run_dir / "archive.sqlite").read_bytes()).hexdigest()
    with views.read_only(run_dir) as db:
        version = views.version_of(db)
        view = views.run_view(db, "r")
        with pytest.raises(Exception, match="readonly"):
            db.execute("DELETE FROM candidates")
        candidate = views.candidate_view(db, 2, against=3)
    assert hashlib.sha256((run_dir / "archive.sqlite").read_bytes()).hexdigest() == before
    assert [p["id"] for p in view["points"]] == [1, 2, 3, 4]
    assert view["overview"]["status_counts"] == {"ok": 2, "failed": 1, "rejected_unparseable": 1}
    assert view["overview"]["best_id"] == 2 and view["overview"]["state"] == "running"
    assert [s[2] for s in views.best_so_far(view["points"])] == [1, 2]
    assert view["models"][0]["candidates"] == 3 and view["models"][0]["improved"] == 1
    assert [d["label"] for d in candidate["diffs"]] == ["parent", "chosen"]
    assert [a["id"] for a in candidate["lineage"]] == [1, 2] and [c["id"] for c in candidate["children"]] == [
        3,
        4,
    ]

    links = pages.Links()
    run_page = pages.run_page(view, "calls", links)
    cand_page = pages.candidate_page(candidate, "r", links)
    report = pages.report_page(view, [candidate], 0.0)
    for page in (run_page, cand_page, report):
        no_live_markup(page)
    assert html.escape(PAYLOAD) in cand_page  # shown as text
    assert 'data-poll="/run/r/version"' in run_page  # a running run refreshes itself
    assert "<script" not in report and pages.REPORT_CSP in report

    archive.log_event("run_stopped", reason="budget spent")
    archive.close()
    with views.read_only(run_dir) as db:
        assert views.version_of(db) > version
        assert views.run_overview(db, "r")["reason"] == "budget spent"


def test_server_routes_and_cache(tmp_path: Path) -> None:
    make_run(tmp_path / "r").close()
    catalogue, cache = Catalogue(tmp_path), PageCache(size=2)
    first = route(catalogue, "/run/r", cache)
    assert first.status == 200 and route(catalogue, "/run/r", cache) is first  # unchanged archive: cached
    assert route(catalogue, "/run/r/c/2?against=3", cache).status == 200
    assert route(catalogue, "/run/r/version").body.isdigit()
    assert route(catalogue, "/static/app.js").content_type.startswith("text/javascript")
    assert route(catalogue, "/static/../../etc/passwd").status == 404
    assert route(catalogue, "/nowhere").status == 404
    with pytest.raises(UserError, match="no candidate 99"):
        route(catalogue, "/run/r/c/99")
    with pytest.raises(UserError, match="x must be one of"):
        route(catalogue, "/run/r?x=<b>")
    with pytest.raises(UserError, match="no run"):
        route(catalogue, "/run/other")
    writer = Archive.open(tmp_path / "r")
    writer.log_event("run_stopped", reason="x")  # a write: the page is made again
    writer.close()
    assert route(catalogue, "/run/r", cache) is not first


def test_highlight_shows_the_code_exactly() -> None:
    samples = [
        Path(pages.__file__).read_text(),
        f"x = '{PAYLOAD}'  # {PAYLOAD}\ndef f(:\n",
        "s = '''unclosed\n<b>",
        "a = 1\x0cb = '\u2028'\r\nc = 2\n",
        'print(rb"x" + f"{y}" + 0x1F + 1.5e-3)\nclass Foo(Bar): pass\n',
        "",
    ]
    for code in samples:
        out = highlight(code)
        assert html.unescape(re.sub(r"<[^>]+>", "", out)) == code
        assert "<script" not in out and "<img" not in out
    assert '<span class="kw">def</span> <span class="fn">f</span>' in highlight("def f(): pass")


def test_tree_layout_handles_a_deep_chain() -> None:
    n = 20_000  # deeper than Python's recursion limit
    points = [{"id": i, "parent_id": i - 1 if i > 1 else None} for i in range(1, n + 1)]
    x, depth = tree_layout(points)
    assert depth[n] == n - 1 and x[1] == x[n] == 0


def test_map_elites_grid_shows_each_cells_elite(tmp_path: Path) -> None:
    run_dir = tmp_path / "g"
    archive = Archive.create(
        run_dir, {"config": {"strategy": "dgm", "map_elites": "metric:x:4:0:4", "models": []}}
    )
    for i, (x, score) in enumerate([(0.5, 1.0), (0.7, 3.0), (2.5, 2.0), (3.9, -1.0)]):
        cid = archive.add_seed(f"x = {i}\n", f"h{i}")
        archive.record_evaluation(
            cid, "ok", score, score, {"x": x}, None, None, None, "process", "train", 0.1
        )
    archive.close()
    with views.read_only(run_dir) as db:
        grid = grid_of(db, views.run_view(db, "g")["config"])
    assert {cell: v["id"] for cell, v in grid["cells"].items()} == {(0,): 2, (2,): 3, (3,): 4}
    drawn = grid_svg(grid, "/run/g/c/")
    assert drawn.count('class="cell"') == 3 and 'href="/run/g/c/2"' in drawn
    with views.read_only(run_dir) as db:
        assert grid_of(db, {"strategy": "dgm"}) is None


def record_agent_calls(archive: Archive, candidate_id: int) -> None:
    """Three calls by a candidate's agent: two on the search evaluation (one hostile, with two replies), one refused on the gate."""
    base = {"candidate_id": candidate_id, "session": "s", "model": "openai/agent", "started_at": 1.0}
    archive.record_agent_call(
        {**base, "evaluation": "search:train:0", "split": "train", "seed": 0, "sample_index": 0,
         "messages": [{"role": "system", "content": f"sys {PAYLOAD}"}, {"role": "user", "content": "What is 6*7?"}],
         "params": {"temperature": 0.5, "n": 2, "model": PAYLOAD}, "reply": [f"42 {PAYLOAD}", "forty-two"],
         "status": "ok", "prompt_tokens": 30, "completion_tokens": 7, "cost_usd": 0.002, "latency_s": 0.25}
    )  # fmt: skip
    archive.record_agent_call(
        {**base, "evaluation": "search:train:0", "split": "train", "seed": 0, "sample_index": 1,
         "messages": [{"role": "user", "content": [{"type": "text", "text": "parts"}]}], "reply": ["7"],
         "status": "ok", "prompt_tokens": 10, "completion_tokens": 1, "cost_usd": None, "latency_s": 0.5}
    )  # fmt: skip
    archive.record_agent_call(
        {**base, "evaluation": "gate:heldout:1003", "split": "heldout", "seed": 1003, "sample_index": None,
         "messages": [{"role": "user", "content": "again"}], "reply": None, "status": "refused",
         "error": f"over budget: 1 call {PAYLOAD}"}
    )  # fmt: skip


def test_candidate_page_shows_agent_calls_escaped_with_totals(tmp_path: Path) -> None:
    run_dir = tmp_path / "r"
    archive = make_run(run_dir)
    record_agent_calls(archive, 2)
    archive.close()
    with views.read_only(run_dir) as db:
        agent = views.candidate_view(db, 2)
        plain = views.candidate_view(db, 3)
        view = views.run_view(db, "r")
    assert [c["sample_index"] for c in agent["agent_calls"]] == [0, 1, None]
    search, gate, total = agent["agent_totals"]
    assert (search["evaluation"], search["calls"], search["prompt_tokens"], search["unpriced"]) == (
        "search:train:0", 2, 40, 1,
    )  # fmt: skip
    assert (gate["split"], gate["not_ok"]) == ("heldout", 1)
    assert (total["calls"], total["not_ok"], total["completion_tokens"]) == (3, 1, 8)
    assert total["cost_usd"] == pytest.approx(0.002) and total["latency_s"] == pytest.approx(0.75)
    assert plain["agent_calls"] == [] and plain["agent_totals"] == []

    page = pages.candidate_page(agent, "r", pages.Links())
    no_live_markup(page)
    assert "<h2>Agent calls (3)</h2>" in page and page.count('<details class="agent-call') == 3
    assert page.count('<details class="agent-call not-ok"') == 1  # the refused one stands out
    for text in (f"sys {PAYLOAD}", f"42 {PAYLOAD}", "forty-two", f"over budget: 1 call {PAYLOAD}"):
        assert html.escape(text) in page, text
    assert "reply 2 of 2" in page and html.escape('"type": "text"') in page  # non-string content as JSON
    assert "$0.0020 (1 unpriced)" in page  # the search evaluation's cost: an unknown price is not $0
    assert "Agent calls" not in pages.candidate_page(plain, "r", pages.Links())

    shown = pages.agent_calls_html(agent["agent_calls"], agent["agent_totals"], 1, "r", 2)
    assert shown.count('<details class="agent-call') == 1 and "showing the first 1 of 3 calls" in shown
    report = pages.report_page(view, [agent], 0.0)
    no_live_markup(report)
    assert report.count('<details class="agent-call') == 3

    # The run's cost shows its agents' spend apart from the search's own calls, on the run and runs pages.
    o = view["overview"]
    assert (o["calls"], o["agent_calls"], o["agent_unpriced_calls"]) == (3, 3, 2)
    assert o["cost_usd"] == pytest.approx(0.003) and o["agent_cost_usd"] == pytest.approx(0.002)
    spent = "$0.0030 + agents $0.0020 (2 unpriced) over 3 calls"
    assert spent in pages.run_page(view, "calls", pages.Links()) and spent in pages.runs_page(
        [o], pages.Links()
    )
    assert "agents" not in pages.spend({**o, "agent_calls": 0})


def test_run_page_queries_read_small_indexes_not_prompts(tmp_path: Path) -> None:
    """The run page's per-model usage and cost read covering indexes, never the rows holding prompts and replies."""
    make_run(tmp_path / "r").close()
    with views.read_only(tmp_path / "r") as db:
        usage = " ".join(r[3] for r in db.execute("EXPLAIN QUERY PLAN " + USAGE_BY_MODEL))
        cost = " ".join(r[3] for r in db.execute("EXPLAIN QUERY PLAN SELECT id, cost_usd FROM llm_calls"))
        assert views.model_stats(db, views.candidate_points(db))[0]["calls"] == 3
    assert "COVERING INDEX llm_calls_usage" in usage, usage
    assert "COVERING INDEX llm_calls_cost" in cost, cost


def test_a_schema_2_archive_is_shown_as_it_is(tmp_path: Path) -> None:
    """An archive from before agent calls (schema 2, no agent_calls table) is listed and browsed, never upgraded."""
    make_run(tmp_path / "old").close()
    db = sqlite3.connect(tmp_path / "old" / "archive.sqlite")
    db.execute("DROP TABLE agent_calls")
    db.execute("ALTER TABLE candidates DROP COLUMN node")  # added by schema 4
    db.execute("UPDATE meta SET value='2' WHERE key='schema_version'")
    db.commit()
    db.close()
    before = hashlib.sha256((tmp_path / "old" / "archive.sqlite").read_bytes()).hexdigest()
    catalogue = Catalogue(tmp_path)
    runs = route(catalogue, "/")
    assert b'href="/run/old"' in runs.body
    assert route(catalogue, "/run/old").status == 200
    page = route(catalogue, "/run/old/c/2").body.decode()
    assert "Candidate #2" in page and "Agent calls" not in page
    # the CLI's read-only reports of `archive show` and `archive candidate` read it too
    assert views.run_report(tmp_path / "old")["agent"]["calls"] == 0
    assert views.candidate_report(tmp_path / "old", 2)["agent_calls"] == []
    assert hashlib.sha256((tmp_path / "old" / "archive.sqlite").read_bytes()).hexdigest() == before
    newer = sqlite3.connect(tmp_path / "old" / "archive.sqlite")
    newer.execute("UPDATE meta SET value='99' WHERE key='schema_version'")
    newer.commit()
    newer.close()
    with pytest.raises(UserError, match=f"schema 99; this viewer reads schema {SCHEMA_VERSION} and older"):
        route(catalogue, "/run/old")
    listed = route(
        catalogue, "/"
    ).body.decode()  # named on the runs page with the reason, not dropped silently
    assert "Runs not shown" in listed and "old: " in listed and "schema 99" in listed


def test_bandit_arms_are_a_table_of_pulls_and_children(tmp_path: Path) -> None:
    run_dir = tmp_path / "b"
    archive = make_run(run_dir)
    bandit = {
        "method": "ucb",
        "exploration": 1.4,
        "arms": {
            "diff|m": {"pulls": 2, "reward": 1.0, "reward_sq": 1.0, "cost": 0.5},
            f"full|{PAYLOAD}": {"pulls": 0, "reward": 0.0, "reward_sq": 0.0, "cost": 0.0},
        },
    }
    usage = {"prompt_tokens": 1, "completion_tokens": 1, "cost_usd": 0.0, "latency_s": 0.1}
    call = archive.start_call("m", "diff", 2, 4, "p")
    child = archive.finish_call_with_candidate(
        call, "r", usage, 2, "diff", "def solve():\n    return 3\n", "h4", extra={"arm": "diff|m"},
        meta={"bandit": bandit},
    )  # fmt: skip
    archive.record_evaluation(child, "ok", 0.0, 0.0, {}, None, None, None, "process", "train", 0.1)
    archive.close()
    with views.read_only(run_dir) as db:
        view = views.run_view(db, "b")
    diff, full = view["arms"]
    assert (diff["arm"], diff["pulls"], diff["mean_reward"], diff["children"], diff["improved"]) == (
        "diff|m", 2, 0.5, 1, 1,
    )  # fmt: skip
    assert (full["pulls"], full["mean_reward"], full["children"]) == (0, None, 0)
    page = pages.run_page(view, "calls", pages.Links())
    no_live_markup(page)
    assert "<h2>Bandit arms (ucb)</h2>" in page and html.escape(f"full|{PAYLOAD}") in page
    assert views.bandit_arms(None, view["points"]) == []


def test_a_pending_candidates_page_refreshes_itself(tmp_path: Path) -> None:
    archive = make_run(tmp_path / "r")
    call = archive.start_call("m", "diff", 2, 5, "p")
    usage = {"prompt_tokens": 1, "completion_tokens": 1, "cost_usd": 0.0, "latency_s": 0.1}
    pending = archive.finish_call_with_candidate(
        call, "r", usage, 2, "diff", "def solve():\n    return 5\n", "h5"
    )
    archive.close()
    with views.read_only(tmp_path / "r") as db:
        waiting, done = views.candidate_view(db, pending), views.candidate_view(db, 2)
    assert waiting["status"] == "pending" and waiting["version"] > 0
    assert f'data-poll="/run/r/version" data-version="{waiting["version"]}"' in pages.candidate_page(
        waiting, "r", pages.Links()
    )
    assert "data-poll" not in pages.candidate_page(done, "r", pages.Links())
