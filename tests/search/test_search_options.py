"""Search options wired into the loop: promotion gate, novelty, repair, crossover, islands, reflection, bandit, cascade."""

from __future__ import annotations

import asyncio
import itertools
from pathlib import Path

import pytest

from discovery.archive import Archive
from discovery.config import ModelConfig, RunConfig
from discovery.llm import LLMClient, ModelSpec
from discovery.sandbox.process import ProcessSandbox
from discovery.search.loop import Search
from discovery.search.repairs import owed
from discovery.task import load_task


def solve(x: float, extra: str = "") -> str:
    return f"```python\ndef solve():\n{extra}    return {x}\n```"


def run(task_dir: Path, tmp_path: Path, server, budget: int, **options) -> Archive:
    task = load_task(task_dir)
    config = RunConfig(
        task=str(task_dir),
        models=[ModelConfig(name="openai/fake", api_base=server.api_base)],
        budget=budget,
        reply_format="block",
        llm_concurrency=1,
        eval_slots=1,
        **options,
    )
    archive = Archive.create(
        tmp_path / "run", {"task_path": str(task.path), "task": task.name, "config": config.model_dump()}
    )
    client = LLMClient(
        [ModelSpec("openai/fake", 1.0, server.api_base, "sk-fake")], attempts=2, max_wait_s=0.1
    )
    asyncio.run(Search(archive, task, config, client, ProcessSandbox(), "t").run())
    return archive


def counting_replies():
    numbers = itertools.count(1)
    return lambda request: solve(next(numbers) / 1000)


def user_prompt(request: dict) -> str:
    return request["messages"][-1]["content"]


def test_a_better_candidate_is_promoted_after_held_out_repeats(toy_task, tmp_path, fake_llm):
    server = fake_llm([solve(2.0)], default=solve(0.1))
    archive = run(toy_task, tmp_path, server, budget=1, crossover_rate=0, novelty_threshold=None)
    [gate] = archive.promotions()
    assert gate["promoted"] == 1 and gate["champion_id"] == 1 and gate["challenger_id"] == 2
    # The toy evaluator ignores the seed: two identical pairs show it, and one exact comparison decides.
    assert len(gate["seeds"]) == 2 and gate["p_value"] is None and gate["test"] == "exact"
    assert gate["challenger_scores"] == [-1.0] * 2 and gate["champion_scores"] == [-9.0] * 2
    assert archive.champion_id() == 2


def test_a_declared_deterministic_task_is_gated_on_one_pair(toy_task, tmp_path, fake_llm):
    toml = toy_task / "task.toml"
    toml.write_text(toml.read_text() + "\n[evaluation]\ndeterministic = true\n")
    server = fake_llm([solve(2.0)], default=solve(0.1))
    archive = run(toy_task, tmp_path, server, budget=1, crossover_rate=0, novelty_threshold=None)
    [gate] = archive.promotions()
    assert gate["seeds"] == [1000] and gate["test"] == "exact" and gate["promoted"] == 1
    assert gate["p_value"] is None and "exact" in gate["reason"]


def test_a_worse_candidate_never_reaches_the_gate(toy_task, tmp_path, fake_llm):
    server = fake_llm(default=solve(-5.0))
    archive = run(toy_task, tmp_path, server, budget=1, crossover_rate=0)
    assert archive.promotions() == [] and archive.champion_id() == 1


def test_noisy_improvement_is_not_promoted(toy_task, tmp_path, fake_llm):
    # The evaluator adds seed-dependent noise far larger than the true gain.
    evaluator = toy_task / "evaluate.py"
    evaluator.write_text(
        evaluator.read_text().replace(
            'return {"score": -((x - 3.0) ** 2)',
            # noise only on the gate's seeds (>= 1000), and different per program: the gain is 0.06, the noise 50
            'import random\n    noise = random.Random(f"{seed}:{x}").gauss(0, 50) if seed >= 1000 else 0\n'
            '    return {"score": -((x - 3.0) ** 2) + noise',
        )
    )
    server = fake_llm([solve(0.01)], default=solve(0.1))
    archive = run(toy_task, tmp_path, server, budget=1, crossover_rate=0, novelty_threshold=None)
    [gate] = archive.promotions()
    assert gate["promoted"] == 0 and "not significant" in gate["reason"] and archive.champion_id() == 1
    assert gate["test"] == "paired permutation" and len(gate["seeds"]) == 6 and gate["p_value"] > 0.05


def test_near_duplicates_are_rejected_before_evaluation(toy_task, tmp_path, fake_llm):
    body = "".join(f"    v{i} = {i} * 2 + 1\n" for i in range(30))
    server = fake_llm([solve(1.0, body), solve(1.5, body), solve(1.75, body), solve(2.0, body)])
    archive = run(
        toy_task,
        tmp_path,
        server,
        budget=4,
        novelty_threshold=0.8,
        novelty_resamples=2,
        crossover_rate=0,
        repair=False,
    )
    statuses = [c.status for c in archive.candidates()[1:]]
    assert statuses == ["ok", "rejected_similar", "rejected_similar", "ok"]  # the third try goes through
    rejected = archive.candidates("rejected_similar")[0]
    assert "similar to candidate 2" in rejected.failure and rejected.similarity >= 0.8
    assert rejected.eval_wall_s is None  # never evaluated


def test_a_failure_is_fed_back_once_for_repair(toy_task, tmp_path, fake_llm):
    attempts = itertools.count()

    def reply(request):
        # every reply crashes, each with different code so none is a duplicate
        return f"```python\ndef solve():\n    raise ValueError('negative radius {next(attempts)}')\n```"

    server = fake_llm(default=reply)
    archive = run(toy_task, tmp_path, server, budget=4, crossover_rate=0, novelty_threshold=None)
    children = archive.candidates()[1:]
    repairs = [c for c in children if c.operator == "repair"]
    assert repairs and all(archive.candidate(r.parent_id).operator == "block" for r in repairs)
    assert all(c.status == "failed" for c in children)
    assert not any(
        c.parent_id in {r.id for r in repairs} for c in children
    )  # a failed repair is not repaired again
    repair_prompts = [user_prompt(r) for r in server.requests if "How it failed" in user_prompt(r)]
    assert (
        repair_prompts and "negative radius" in repair_prompts[0] and "raise ValueError" in repair_prompts[0]
    )


def test_a_repair_owed_when_the_run_stopped_is_made_on_resume(toy_task, tmp_path, fake_llm):
    attempts = itertools.count()

    def reply(request):
        return f"```python\ndef solve():\n    raise ValueError('negative radius {next(attempts)}')\n```"

    server = fake_llm(default=reply)
    archive = run(toy_task, tmp_path, server, budget=1, crossover_rate=0, novelty_threshold=None)
    [failed] = archive.candidates()[1:]  # the budget ended with its repair still queued
    assert failed.status == "failed" and owed(archive, 1) == [failed.id]
    task = load_task(toy_task)
    config = RunConfig.model_validate({**archive.meta()["config"], "budget": 2})
    client = LLMClient(
        [ModelSpec("openai/fake", 1.0, server.api_base, "sk-fake")], attempts=2, max_wait_s=0.1
    )
    asyncio.run(Search(archive, task, config, client, ProcessSandbox(), "t").run())
    [repair] = archive.candidates()[2:]
    assert repair.operator == "repair" and repair.parent_id == failed.id
    assert "How it failed" in user_prompt(server.requests[-1]) and owed(archive, 1) == []


def test_crossover_shows_two_parents_and_links_both(toy_task, tmp_path, fake_llm):
    server = fake_llm([solve(1.0), solve(2.0)], default=counting_replies())
    archive = run(toy_task, tmp_path, server, budget=4, crossover_rate=1.0, novelty_threshold=None)
    crossed = [c for c in archive.candidates() if c.operator == "crossover"]
    assert crossed and all(c.second_parent_id not in (None, c.parent_id) for c in crossed)
    assert any("Program B" in user_prompt(r) for r in server.requests)


def test_islands_keep_their_own_members_and_persist(toy_task, tmp_path, fake_llm):
    server = fake_llm(default=counting_replies())
    archive = run(
        toy_task,
        tmp_path,
        server,
        budget=6,
        islands=2,
        migration_every=2,
        crossover_rate=0,
        novelty_threshold=None,
    )
    children = archive.candidates()[1:]
    assert {c.island for c in children} <= {0, 1} and None not in {c.island for c in children}
    state = archive.meta()["islands"]
    assert len(state["members"]) == 2 and all(1 in m for m in state["members"])  # the seed founds both
    assert archive.events("migrated")


def test_reflections_are_stored_and_reach_later_prompts(toy_task, tmp_path, fake_llm):
    mutation = counting_replies()

    def reply(request):
        if "lessons" in request["messages"][0]["content"]:  # the reflection system prompt
            return "Returning values closer to three scores better."
        return mutation(request)

    server = fake_llm(default=reply)
    archive = run(
        toy_task,
        tmp_path,
        server,
        budget=12,
        reflection=True,
        reflection_every=1,
        crossover_rate=0,
        novelty_threshold=None,
        repair=False,
    )
    kinds = [r["kind"] for r in archive.reflections()]
    assert "short" in kinds and "long" in kinds
    calls = archive.db.execute("SELECT operator FROM llm_calls").fetchall()
    assert {"reflect_short", "reflect_long"} <= {c[0] for c in calls}
    assert archive.calls_made() == 12  # reflections count against the budget
    later = [user_prompt(r) for r in server.requests if "Lessons learned" in user_prompt(r)]
    assert later


def test_bandit_statistics_are_kept_in_the_archive(toy_task, tmp_path, fake_llm):
    server = fake_llm(default=counting_replies())
    archive = run(toy_task, tmp_path, server, budget=5, bandit="ucb", novelty_threshold=None)
    arms = archive.meta()["bandit"]["arms"]
    assert sum(a["pulls"] for a in arms.values()) == 5
    assert {c.arm for c in archive.candidates()[1:]} <= set(arms)


def test_cascade_stops_weak_candidates_after_the_quick_stage(toy_task, tmp_path, fake_llm):
    (toy_task / "task.toml").write_text(
        (toy_task / "task.toml").read_text() + '\n[evaluation]\ncascade_stage = "quick"\n'
    )
    replies = [solve(x) for x in (2.9, 2.8, 2.7, 2.6, 2.5, -40.0)]
    server = fake_llm(replies)
    archive = run(toy_task, tmp_path, server, budget=6, cascade=0.5, crossover_rate=0, novelty_threshold=None)
    last = archive.candidates()[-1]
    assert (
        last.status == "cascade_stopped"
        and "below the bar" in last.failure
        and last.stage_fitness is not None
    )
    assert archive.candidates()[1].status == "ok"


def test_best_of_n_is_a_pure_baseline(toy_task, tmp_path, fake_llm):
    crash = "```python\ndef solve():\n    raise ValueError('x')\n```"
    server = fake_llm([crash], default=counting_replies())
    archive = run(
        toy_task,
        tmp_path,
        server,
        budget=5,
        strategy="best-of-n",
        crossover_rate=1.0,
        reflection=True,
        islands=3,
    )
    children = archive.candidates()[1:]
    assert len(children) == 5 and all(c.parent_id == 1 for c in children)
    assert {c.operator for c in children} == {"block"} and archive.reflections() == []
    assert "islands" not in archive.meta()


@pytest.mark.parametrize("repeats", [2, 4])
def test_promotion_repeats_that_cannot_reach_significance_are_refused(repeats):
    with pytest.raises(ValueError, match="can never reach"):
        RunConfig(task="t", models=[ModelConfig(name="m")], promotion_repeats=repeats)
