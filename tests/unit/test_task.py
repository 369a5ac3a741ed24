"""Task folders: loading and the problems `discovery tasks validate` reports."""

from __future__ import annotations

import pytest

from discovery.errors import UserError
from discovery.task import find_problems, load_task


def test_toy_task_loads(toy_task):
    task = load_task(toy_task)
    assert task.name == "toy" and task.maximize and "EVOLVE-BLOCK-START" in task.seed_code
    assert task.fitness(2.0) == 2.0


def test_missing_folder(tmp_path):
    assert "no such task folder" in find_problems(tmp_path / "nope")[0]


def test_every_problem_is_reported_at_once(toy_task):
    (toy_task / "task.toml").write_text('name = "bad name!"\n[resources]\ncpus = -1\nbogus = 1\n')
    (toy_task / "program.py").write_text("def f(:\n")
    (toy_task / "evaluate.py").write_text("def score(path):\n    return 1\n")
    problems = "\n".join(find_problems(toy_task))
    for expected in (
        "name",
        "brief",
        "cpus",
        "bogus",
        "not valid Python",
        "EVOLVE-BLOCK-START",
        "no top-level function evaluate",
    ):
        assert expected in problems, expected


def test_malformed_toml_names_the_file(toy_task):
    (toy_task / "task.toml").write_text("name = \n")
    problems = find_problems(toy_task)
    assert "not valid TOML" in problems[0] and "task.toml" in problems[0]


def test_evaluate_signature_is_checked(toy_task):
    (toy_task / "evaluate.py").write_text("def evaluate(path):\n    return {'score': 1}\n")
    assert "must accept (candidate_path, split, seed)" in find_problems(toy_task)[0]


def test_same_split_twice_is_rejected(toy_task):
    text = (toy_task / "task.toml").read_text() + '\n[evaluation]\ntrain_split = "a"\nheldout_split = "a"\n'
    (toy_task / "task.toml").write_text(text)
    assert any("must differ" in p for p in find_problems(toy_task))


def test_load_raises_user_error(toy_task):
    (toy_task / "program.py").unlink()
    with pytest.raises(UserError, match="program.py: missing"):
        load_task(toy_task)
