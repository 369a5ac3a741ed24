"""The discovery loop end to end: real HTTP to a fake LLM, litellm, the real runner in the process sandbox, SQLite."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

import pytest

from discovery.archive import Archive
from discovery.config import ModelConfig, RunConfig
from discovery.llm import LLMClient, ModelSpec
from discovery.sandbox.process import ProcessSandbox
from discovery.search.loop import Search
from discovery.task import load_task
from tests.fake_llm import Empty, Fail


def block(body: str) -> str:
    return f"```python\n{body}```"


def solve(x: float) -> str:
    return block(f"def solve():\n    return {x}\n")


def run_search(task_dir: Path, tmp_path: Path, server, budget: int, **config) -> tuple[Archive, str]:
    task = load_task(task_dir)
    cfg = RunConfig(
        task=str(task_dir),
        models=[ModelConfig(name="openai/fake", api_base=server.api_base)],
        budget=budget,
        reply_format="block",
        **config,
    )
    archive = Archive.create(
        tmp_path / "run", {"task_path": str(task.path), "task": task.name, "config": cfg.model_dump()}
    )
    client = LLMClient(
        [ModelSpec("openai/fake", 1.0, server.api_base, "sk-fake")], attempts=3, max_wait_s=0.2
    )
    search = Search(archive, task, cfg, client, ProcessSandbox(), "test-run")
    return archive, asyncio.run(search.run())


def by_status(archive: Archive) -> dict[str, list]:
    out: dict[str, list] = {}
    for c in archive.candidates():
        out.setdefault(c.status, []).append(c)
    return out


def test_best_score_improves_with_a_better_reply(toy_task, tmp_path, fake_llm):
    server = fake_llm([solve(1.0), solve(2.9)], default=solve(0.5))
    archive, reason = run_search(toy_task, tmp_path, server, budget=3, llm_concurrency=1, eval_slots=1)
    assert reason == "budget spent"
    seed = archive.candidates()[0]
    assert seed.operator == "seed" and seed.score == pytest.approx(-9.0)
    assert archive.best().score == pytest.approx(-(0.1**2))
    assert archive.calls_made() == 3


def test_bad_replies_are_recorded_with_reasons_and_the_run_continues(toy_task, tmp_path, fake_llm):
    replies = [
        "I would increase x a little.",  # prose
        block(
            "import os\n# EVOLVE-BLOCK-START\ndef solve():\n    return 3\n# EVOLVE-BLOCK-END\n"
        ),  # drops fixed code
        solve(2.0),
        solve(2.0),  # duplicate
        block("def solve():\n    raise RuntimeError('boom')\n"),  # crashes
        block("def solve():\n    return float('nan')\n"),  # invalid output
        block("def solve(:\n    return 1\n"),  # syntax
        solve(3.0),
    ]
    server = fake_llm(replies)
    archive, reason = run_search(
        toy_task, tmp_path, server, budget=len(replies), llm_concurrency=1, eval_slots=1
    )
    assert reason == "budget spent"
    groups = by_status(archive)
    assert "holds no code" in groups["rejected_unparseable"][0].failure
    assert "before the EVOLVE block" in groups["rejected_outside_block"][0].failure
    assert len(groups["rejected_duplicate"]) == 1
    assert re.fullmatch(r"line \d+: invalid syntax", groups["rejected_syntax"][0].failure)
    failures = {c.failure.splitlines()[0] for c in groups["failed"]}
    assert any("RuntimeError: boom" in f for f in failures)
    assert any("finite number" in f for f in failures)
    assert archive.best().score == 0.0
    # a failed candidate is never a parent, except of the one repair attempt that links to it
    failed_ids = {c.id for c in groups["failed"]}
    children_of_failed = [c for c in archive.candidates() if c.parent_id in failed_ids]
    assert children_of_failed and all(c.operator == "repair" for c in children_of_failed)


def test_budget_is_exact_under_concurrency_and_each_request_has_its_own_seed(toy_task, tmp_path, fake_llm):
    server = fake_llm(default=lambda req: solve(len(req["messages"][1]["content"]) % 97 / 10), latency_s=0.05)
    archive, _ = run_search(toy_task, tmp_path, server, budget=9, llm_concurrency=4, eval_slots=2)
    assert archive.calls_made() == 9
    assert len(server.requests) == 9
    seeds = [r.get("seed") for r in server.requests]
    assert None not in seeds and len(set(seeds)) == 9
    assert not archive.pending_ids()


def test_transient_provider_errors_are_retried(toy_task, tmp_path, fake_llm):
    server = fake_llm([Fail(500), Fail(429), solve(3.0)])
    archive, reason = run_search(toy_task, tmp_path, server, budget=1)
    assert reason == "budget spent"
    assert archive.calls_made() == 1 and len(server.requests) == 3
    assert archive.best().score == 0.0


def test_wrong_api_key_stops_the_run_with_a_clear_reason(toy_task, tmp_path, fake_llm):
    server = fake_llm(default=Fail(401))
    archive, reason = run_search(toy_task, tmp_path, server, budget=5, llm_concurrency=1)
    assert "AuthenticationError" in reason
    assert archive.calls_made() == 1
    assert archive.call(1)["status"] == "error"


def test_empty_replies_are_recorded_and_do_not_stop_the_run(toy_task, tmp_path, fake_llm):
    server = fake_llm([Empty(), solve(3.0)])
    archive, _ = run_search(toy_task, tmp_path, server, budget=2, llm_concurrency=1)
    assert archive.call(1)["status"] == "empty"
    assert archive.best().score == 0.0


def test_unreachable_provider_stops_after_repeated_failures(toy_task, tmp_path):
    class Nowhere:
        api_base = "http://127.0.0.1:9/v1"  # discard port: nothing listens

    archive, reason = run_search(toy_task, tmp_path, Nowhere(), budget=20, llm_concurrency=1)
    assert "in a row" in reason and archive.calls_made() == 5


def test_a_failing_seed_stops_the_run_before_any_call(toy_task, tmp_path, fake_llm):
    (toy_task / "program.py").write_text(
        "# EVOLVE-BLOCK-START\ndef solve():\n    return 'x'\n# EVOLVE-BLOCK-END\n"
    )
    server = fake_llm(default=solve(1.0))
    archive, reason = run_search(toy_task, tmp_path, server, budget=3)
    assert "seed program failed" in reason and archive.calls_made() == 0


def test_prompt_carries_parent_score_feedback_and_format(toy_task, tmp_path, fake_llm):
    server = fake_llm(default=solve(1.0))
    run_search(toy_task, tmp_path, server, budget=1)
    user = server.requests[0]["messages"][1]["content"]
    assert "score -9" in user and "solve() returned 0.0" in user and "def solve():" in user
    assert "Return a number x" in user  # the task brief


def test_a_broken_sandbox_stops_the_run_and_leaves_the_candidate_pending(toy_task, tmp_path, fake_llm):
    server = fake_llm(default=solve(1.0))
    task = load_task(toy_task)
    cfg = RunConfig(
        task=str(toy_task), models=[ModelConfig(name="openai/fake", api_base=server.api_base)], budget=3
    )
    archive = Archive.create(
        tmp_path / "run", {"task_path": str(task.path), "task": task.name, "config": cfg.model_dump()}
    )
    client = LLMClient([ModelSpec("openai/fake", 1.0, server.api_base, "sk-fake")])
    broken = ProcessSandbox(python=str(tmp_path / "no-such-python"))
    reason = asyncio.run(Search(archive, task, cfg, client, broken, "r").run())
    assert "sandbox failed" in reason and "still pending" in reason
    assert archive.pending_ids() == [1] and archive.calls_made() == 0
    # with a working backend the same archive resumes and evaluates the seed once
    reason = asyncio.run(Search(archive, task, cfg, client, ProcessSandbox(), "r").run())
    assert reason == "budget spent" and archive.candidate(1).status == "ok"
    assert len(archive.events("candidate_evaluated")) == 1 + 3 - len(archive.candidates("rejected_duplicate"))
