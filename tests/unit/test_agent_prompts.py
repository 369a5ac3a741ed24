"""Agent meta prompts: the archive of named agents with intervals, the reply's name and rationale, the check turn.

The planner's prompt is built from a real run archive (SQLite): agents recorded with their names
(a `candidate_designed` event) and evaluated with the metrics an agent task reports.
"""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from discovery.archive import Archive
from discovery.config import ModelConfig, RunConfig
from discovery.llm import LLMClient, ModelSpec
from discovery.program import agent_prompts
from discovery.program.patch import Proposal, build_program
from discovery.search.planner import Planner
from discovery.search.state import Choice, Population
from discovery.task import load_task

ROOT = Path(__file__).resolve().parents[2]
MATH_AGENT = ROOT / "tasks" / "math_agent"
BODY = 'def forward(question: str) -> str:\n    return llm.chat(question + " {tag}", temperature=0.0)\n'


def agent_code(seed_code: str, tag: str) -> str:
    """The seed program with its EVOLVE block replaced by a one-call agent marked by tag."""
    head, rest = seed_code.split("# EVOLVE-BLOCK-START\n")
    _, tail = rest.split("# EVOLVE-BLOCK-END")
    return f"{head}# EVOLVE-BLOCK-START\n{BODY.format(tag=tag)}\n# EVOLVE-BLOCK-END{tail}"


def metrics(score: float, low: float, high: float) -> dict:
    return {"score": score, "accuracy": score, "accuracy_ci_low": low, "accuracy_ci_high": high}


@pytest.fixture
def planner(tmp_path: Path):
    """A planner over a real archive holding the seed and three named agents of scores 0.4, 0.7, 0.55."""
    task = load_task(MATH_AGENT)
    archive = Archive.create(tmp_path / "run", {"task": "math_agent", "config": {}})
    seed = archive.add_seed(task.seed_code, "seed")
    archive.record_evaluation(
        seed, "ok", 0.3, 0.3, metrics(0.3, 0.1, 0.5), "fb", None, None, "process", "train", 1.0
    )
    for k, (name, score) in enumerate([("Voter", 0.4), ("Checker", 0.7), ("Debater", 0.55)]):
        call = archive.start_call("m", "block", seed, 0, "p")
        cid = archive.finish_call_with_candidate(
            call,
            "r",
            {},
            seed,
            "block",
            agent_code(task.seed_code, name),
            f"h{k}",
            design={"name": name, "rationale": f"{name} rationale"},
        )
        archive.record_evaluation(
            cid,
            "ok",
            score,
            score,
            metrics(score, score - 0.2, score + 0.2),
            None,
            None,
            None,
            "process",
            "train",
            1.0,
        )
    config = RunConfig(task=str(MATH_AGENT), models=[ModelConfig(name="openai/fake")], agent_archive=3)
    client = LLMClient([ModelSpec("openai/fake")])
    population = Population.restore(archive, config, client.models)
    yield Planner(archive, task, config, client, population, random.Random(0))
    archive.close()


def user_text(messages: list[dict[str, str]]) -> str:
    return messages[-1]["content"]


def test_the_mutation_prompt_shows_the_best_agents_with_names_scores_and_intervals(planner) -> None:
    seed = planner.archive.seed()
    text = user_text(planner.mutation_messages(Choice(seed, None, [], []), "block"))
    archive_part = text[text.index("# Archive of agents") : text.index("# The agent to build on")]
    # agent_archive=3: the parent plus the two best others, best first; Voter (0.4) is left out.
    assert archive_part.index("Checker (candidate 3): score 0.7 (95% CI 0.5-0.9)") < archive_part.index(
        "Debater (candidate 4): score 0.55 (95% CI 0.35-0.75)"
    )
    assert "Voter" not in text and "Rationale: Checker rationale" in archive_part
    assert '" Checker"' in archive_part  # each agent's code
    assert "# The agent to build on: seed (candidate 1), score 0.3 (95% CI 0.1-0.5)" in text
    assert "# Evaluator feedback on it\nfb" in text
    assert "`Name: <a short name" in text and "`Rationale:" in text
    assert planner.next().turns == planner.config.agent_reflexion == 1


def test_a_named_parent_is_shown_with_its_rationale(planner) -> None:
    parent = planner.archive.candidate(2)
    text = user_text(planner.mutation_messages(Choice(parent, None, [], []), "diff"))
    assert (
        "# The agent to build on: Voter (candidate 2), score 0.4 (95% CI 0.2-0.6)\nRationale: Voter rationale"
        in text
    )
    assert text.count("Voter (candidate 2)") == 1  # not also in the archive list
    assert "# Current program" not in text and "SEARCH" in text


def test_algorithm_tasks_keep_the_plain_prompt(tmp_path: Path) -> None:
    task = load_task(ROOT / "tasks" / "circle_packing")
    archive = Archive.create(tmp_path / "run", {"task": "c", "config": {}})
    seed_id = archive.add_seed(task.seed_code, "s")
    archive.record_evaluation(
        seed_id, "ok", 2.0, 2.0, {"score": 2.0}, None, None, None, "process", "train", 1.0
    )
    config = RunConfig(task="c", models=[ModelConfig(name="openai/fake")])
    client = LLMClient([ModelSpec("openai/fake")])
    planner = Planner(
        archive, task, config, client, Population.restore(archive, config, client.models), random.Random(0)
    )
    plan = planner.next()
    assert "# Current program" in user_text(plan.messages) and "Archive of agents" not in user_text(
        plan.messages
    )
    assert plan.turns == 0
    archive.close()


@pytest.mark.parametrize(
    "reply, name, rationale",
    [
        (
            "Name: Self-Check\nRationale: asks twice\nand compares.\n```python\nx = 1\n```",
            "Self-Check",
            "asks twice and compares.",
        ),
        (
            "**Name:** Debate\n**Rationale:** two roles argue.\n\n```python\nname: str = 'x'\n```",
            "Debate",
            "two roles argue.",
        ),
        ("<<<<<<< SEARCH\nName: not this\n=======\nx\n>>>>>>> REPLACE\nName: After\n", "After", ""),
        ("```python\nName: inside code only\n```", None, None),
    ],
)
def test_parse_design_reads_prose_not_code(reply, name, rationale) -> None:
    design = agent_prompts.parse_design(reply)
    assert (design.name, design.rationale) == (name, rationale) if name else design is None


def test_the_check_turn_follows_the_draft_and_its_reply_builds_against_the_parent(planner) -> None:
    seed = planner.archive.seed()
    prompt = planner.mutation_messages(Choice(seed, None, [], []), "block")
    draft = "Name: Draft\nRationale: r\n```python\ndef forward(question):\n    return undefined_name\n```"
    turn = agent_prompts.with_draft(prompt, draft, "block")
    assert [m["role"] for m in turn] == ["system", "user", "assistant", "user"]
    assert turn[2]["content"] == draft and turn[:2] == prompt
    assert "names used but not defined" in turn[3]["content"] and "`Name:" in turn[3]["content"]
    final = "Name: Fixed\nRationale: r\n```python\ndef forward(question):\n    return llm.chat(question)\n```"
    built = build_program(final, seed.code)
    assert (
        isinstance(built, Proposal)
        and "llm.chat(question)" in built.code
        and built.code.startswith(seed.code[:40])
    )
    assert "not of your draft" in agent_prompts.reflexion_turn("diff")
