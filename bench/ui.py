"""Server time of `discovery ui` pages and the report's size on a synthetic archive of many candidates.

Writes a run of N candidates (default 10,000) through the real archive store (each with ~60 lines of
code, a ~3 KB prompt and its reply; 70 % evaluated ok, 15 % failed, 15 % rejected; parents drawn
mostly among the better ones, so the tree is deep and bushy), then times, in this process:

- the run page (`/run/<run>`: the curve with every candidate as a point and the lineage tree),
- a candidate page (`/run/<run>/c/<id>`: code, diff against its parent, lineage, prompt and reply), and
  one whose agent made 200 LLM calls (each shown collapsed, with totals per evaluation),
  each cold (read the archive and render: what every change to a live run costs) and from the
  server's page cache (the archive unchanged since the page was made),
- the same two over HTTP through the real server (what a browser waits for),
- `archive report` (the default 500 candidate sections; with --full-report also `--all`): time and size.

Target: under 200 ms for each page. Prints figures; asserts nothing.

    .venv/bin/python bench/ui.py [--candidates 10000] [--repeats 5] [--keep DIR] [--full-report]
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from discovery.app.web.report import write_report  # noqa: E402
from discovery.app.web.server import Catalogue, PageCache, make_server, route, url_of  # noqa: E402
from discovery.archive import Archive  # noqa: E402

AGENT_CALLS = 200  # on one candidate: its page shows them all, collapsed
FAILED = (
    'Traceback (most recent call last):\n  File "program.py", line 12, in solve\nValueError: bad value {i}\n'
)


def program(i: int, x: float) -> str:
    """A ~60-line candidate whose block differs a little from its parent's."""
    body = "\n".join(f"    acc += {x:.4f} * {k} / (1 + {k})  # step {k}" for k in range(50 + i % 7))
    return f'"""Synthetic candidate {i}."""\n\n\n# EVOLVE-BLOCK-START\ndef solve():\n    acc = 0.0\n{body}\n    return acc\n# EVOLVE-BLOCK-END\n'


def build(run_dir: Path, n: int, seed: int = 0) -> None:
    """A run archive of n candidates written through the store, as a search would."""
    rng = random.Random(seed)
    archive = Archive.create(run_dir, {"task": "synthetic", "task_path": "-", "config": {
        "strategy": "dgm", "budget": n, "seed": seed, "models": [{"name": "openai/bench", "weight": 1.0}]},
        "train_split": "train", "created_at": time.time()})  # fmt: skip
    archive.log_event("run_started")
    seed_id = archive.add_seed(program(0, 0.0), "h0")
    archive.record_evaluation(
        seed_id, "ok", 0.0, 0.0, {"x": 0.0}, "seed", None, None, "process", "train", 0.1
    )
    ok = [(0.0, seed_id)]
    prompt = "# Task\n" + "Improve the program below. " * 100
    for i in range(1, n):
        best = sorted(ok, reverse=True)[: max(5, len(ok) // 10)] if i % 50 == 0 or len(ok) < 60 else ok[-60:]
        parent_fitness, parent = rng.choice(best)
        x = parent_fitness + rng.gauss(0, 1)
        code = program(i, x)
        call = archive.start_call("openai/bench", "diff", parent, i, prompt + code)
        roll = rng.random()
        status = "ok" if roll < 0.7 else "failed" if roll < 0.85 else "rejected_duplicate"
        usage = {"prompt_tokens": 900, "completion_tokens": 300, "cost_usd": 0.0004, "latency_s": 2.0}
        cid = archive.finish_call_with_candidate(
            call, f"```python\n{code}```", usage, parent, "diff", code, f"h{i}", status if status.startswith("rejected") else "pending",
            failure="an equivalent program is already in the archive" if status.startswith("rejected") else None,
        )  # fmt: skip
        if status == "ok":
            archive.record_evaluation(
                cid, "ok", x, x, {"x": x}, f"solve() returned {x}", None, None, "process", "train", 0.1
            )
            ok.append((x, cid))
        elif status == "failed":
            archive.record_evaluation(cid, "failed", None, None, {}, None, FAILED.format(i=i), "stderr tail", "process", "train", 0.1)  # fmt: skip
    record_agent_calls(archive, n // 2 + 1, AGENT_CALLS)
    archive.log_event("run_stopped", reason="budget spent")
    archive.close()


def record_agent_calls(archive: Archive, candidate_id: int, calls: int) -> None:
    """An agent candidate's calls through the gateway: a search evaluation and a gate repeat, ~1 KB each."""
    question = "A train leaves at 9 and travels 120 km at 80 km/h. " * 8
    for k in range(calls):
        evaluation, split = (
            ("search:train:0", "train") if k < calls // 2 else ("gate:heldout:1003", "heldout")
        )
        archive.record_agent_call(
            {"candidate_id": candidate_id, "evaluation": evaluation, "session": "s", "split": split, "seed": 0,
             "sample_index": k % (calls // 2), "started_at": time.time(), "model": "openai/agent",
             "messages": [{"role": "system", "content": "Solve it."}, {"role": "user", "content": question}],
             "params": {"temperature": 0.0}, "reply": [f"Step by step... Answer: {k}"], "status": "ok",
             "prompt_tokens": 300, "completion_tokens": 20, "cost_usd": 0.0001, "latency_s": 0.8}
        )  # fmt: skip


def timed(fn, repeats: int, clock=time.perf_counter) -> tuple[float, object]:
    """Median seconds of fn() over repeats (wall clock, or CPU time on a shared machine), and its last result."""
    times, result = [], None
    for _ in range(repeats):
        t = clock()
        result = fn()
        times.append(clock() - t)
    return statistics.median(times), result


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--candidates", type=int, default=10_000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--keep", type=Path, help="build the archive in this folder and keep it")
    parser.add_argument(
        "--full-report", action="store_true", help="also time `archive report --all` (minutes)"
    )
    args = parser.parse_args()
    base = args.keep or Path(tempfile.mkdtemp(prefix="discovery-bench-ui-"))
    run_dir = base / "synthetic"
    if not (run_dir / "archive.sqlite").exists():
        t = time.perf_counter()
        build(run_dir, args.candidates)
        print(f"built {args.candidates} candidates in {time.perf_counter() - t:.1f} s: {run_dir}")
    size_db = (run_dir / "archive.sqlite").stat().st_size
    catalogue = Catalogue(base, (run_dir,))
    middle = args.candidates // 2
    print(f"archive {size_db / 1e6:.1f} MB, {args.candidates} candidates; median of {args.repeats}")
    print(f"{'what':44} {'ms':>8} {'page size':>11}")
    pages = (
        ("run page", "/run/synthetic"),
        ("candidate page", f"/run/synthetic/c/{middle}"),
        (f"agent candidate ({AGENT_CALLS} calls)", f"/run/synthetic/c/{middle + 1}"),
        ("runs page", "/"),
    )
    for label, target in pages:
        # cold: no cache, every request reads the archive and renders (what any change to the run costs)
        seconds, answer = timed(lambda target=target: route(catalogue, target), args.repeats)
        print(f"{label + ', cold (read + render)':44} {seconds * 1e3:8.1f} {len(answer.body) / 1e6:9.2f} MB")
        cpu, _ = timed(lambda target=target: route(catalogue, target), args.repeats, clock=time.process_time)
        print(f"{'  the same, CPU time of this process':44} {cpu * 1e3:8.1f}")
    cache = PageCache()
    for label, target in pages[:2]:
        route(catalogue, target, cache)
        seconds, _ = timed(lambda target=target: route(catalogue, target, cache), args.repeats)
        print(f"{label + ', unchanged archive (cached)':44} {seconds * 1e3:8.1f}")
    server = make_server(catalogue)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        for label, target in pages[:2]:
            url = url_of(server) + target.lstrip("/")
            first, _ = timed(lambda url=url: urllib.request.urlopen(url).read(), 1)
            seconds, _ = timed(lambda url=url: urllib.request.urlopen(url).read(), args.repeats)
            print(f"{label + ' over HTTP, first request':44} {first * 1e3:8.1f}")
            print(f"{label + ' over HTTP, then':44} {seconds * 1e3:8.1f}")
    finally:
        server.shutdown()
        server.server_close()
    out = base / "report.html"
    for limit in (500, None) if args.full_report else (500,):
        seconds, (size, shown, _) = timed(lambda limit=limit: write_report(run_dir, out, limit), 1)
        label = f"archive report ({shown} candidates in full)"
        print(f"{label:44} {seconds * 1e3:8.0f} {size / 1e6:9.2f} MB")
    print("target: each page under 200 ms")


if __name__ == "__main__":
    main()
