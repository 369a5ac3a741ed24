"""Multi-file candidates: replies that edit several files, the tree's rules, listings and diffs."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from discovery.errors import UserError
from discovery.program.multifile import child_from_edited_tree, child_from_reply, code_hash_of
from discovery.program.patch import Proposal, Rejection
from discovery.program.tree import from_listing, to_listing, tree_diff
from discovery.task import load_task

TASK = Path(__file__).resolve().parents[2] / "tasks" / "knapsack_files"


@pytest.fixture(scope="module")
def task():
    return load_task(TASK)


def sr(search: str, replace: str, path: str | None = None) -> str:
    """One SEARCH/REPLACE block, under a 'File:' line when a path is given."""
    head = f"File: {path}\n" if path else ""
    return f"{head}<<<<<<< SEARCH\n{search}\n=======\n{replace}\n>>>>>>> REPLACE\n"


def child_tree(task, reply: str) -> dict[str, str]:
    result = child_from_reply(task, reply, task.seed_code)
    assert isinstance(result, Proposal), result
    return task.tree_of(result.code)


def test_the_seed_is_a_tree_of_the_folder_and_its_listing_round_trips(task):
    tree = task.tree_of(task.seed_code)
    assert sorted(tree) == ["checks.py", "heuristic.py", "main.py"]
    assert tree["checks.py"] == (TASK / "solver" / "checks.py").read_text()
    assert from_listing(to_listing(tree)) == tree and task.code_of(tree) == task.seed_code
    assert task.fixed == {"checks.py"}


def test_a_diff_reply_edits_two_files_and_leaves_the_rest(task):
    reply = "Better:\n" + sr("    return value", "    return value / weight", "heuristic.py")
    reply += "\n" + sr("    return chosen", "    return sorted(chosen)", "main.py")
    seed, child = task.tree_of(task.seed_code), child_tree(task, reply)
    assert "return value / weight" in child["heuristic.py"] and "return sorted(chosen)" in child["main.py"]
    assert child["checks.py"] == seed["checks.py"]
    diff = tree_diff(seed, child, "candidate 1", "candidate 2")
    assert "--- a/heuristic.py" in diff and "+++ b/main.py" in diff and "checks.py" not in diff
    assert "+    return value / weight" in diff and "-    return chosen" in diff


def test_an_unnamed_search_block_applies_to_the_one_file_that_holds_it(task):
    child = child_tree(task, sr("    return value", "    return value * 2"))
    assert "return value * 2" in child["heuristic.py"]


def test_an_unnamed_search_block_found_nowhere_is_rejected_with_the_fix(task):
    result = child_from_reply(task, sr("no such line", "x = 1"), task.seed_code)
    assert isinstance(result, Rejection) and result.status == "rejected_patch"
    assert "File: PATH" in result.reason


def test_whole_files_under_file_lines_replace_those_files(task):
    main = "def solve(values, weights, capacity):\n    return []\n"
    reply = f"File: main.py\n```python\n{main}```\n"
    reply += (
        "File: heuristic.py\n```python\ndef priority(value, weight, capacity):\n    return -weight\n```\n"
    )
    child = child_tree(task, reply)
    assert child["main.py"] == main
    # heuristic.py has an EVOLVE block: a body without markers goes between them, the rest is kept.
    assert "return -weight" in child["heuristic.py"] and child["heuristic.py"].startswith('"""How promising')


def test_a_listing_reply_may_add_a_new_file(task):
    tree = {**task.tree_of(task.seed_code), "extra/util.py": "def helper():\n    return 1\n"}
    child = child_tree(task, f"```python\n{to_listing(tree)}```")
    assert child["extra/util.py"] == "def helper():\n    return 1\n"


@pytest.mark.parametrize(
    "reply",
    [
        sr("    return load + weight <= capacity", "    return True", "checks.py"),
        sr(
            "    return load + weight <= capacity", "    return True"
        ),  # unnamed, found only in the fixed file
        "File: checks.py\n```python\ndef fits(load, weight, capacity):\n    return True\n```\n",
    ],
    ids=["named-diff", "unnamed-diff", "whole-file"],
)
def test_a_reply_that_touches_a_fixed_file_is_rejected_before_evaluation(task, reply):
    result = child_from_reply(task, reply, task.seed_code)
    assert isinstance(result, Rejection) and result.status == "rejected_forbidden"
    assert "checks.py" in result.reason and "fixed" in result.reason


@pytest.mark.parametrize("path", ["../evaluate.py", "/etc/passwd", "a/../../x.py", ".hidden.py", "a//b.py"])
def test_a_reply_that_writes_outside_the_tree_is_rejected(task, path):
    result = child_from_reply(task, sr("", "x = 1", path), task.seed_code)
    assert isinstance(result, Rejection) and result.status == "rejected_forbidden", result
    assert path in result.reason


def test_an_edit_outside_a_files_evolve_block_is_rejected(task):
    reply = sr('"""How promising an item is', '"""Changed docstring', "heuristic.py")
    result = child_from_reply(task, reply, task.seed_code)
    assert isinstance(result, Rejection) and result.status == "rejected_outside_block"
    assert result.reason.startswith("heuristic.py: ")


def test_a_syntax_error_names_its_file(task):
    result = child_from_reply(task, sr("    return chosen", "    return (chosen", "main.py"), task.seed_code)
    assert isinstance(result, Rejection) and result.status == "rejected_syntax"
    assert result.reason.startswith("main.py: line")


def test_the_mutator_function_checks_an_agents_edited_tree(task):
    parent = task.tree_of(task.seed_code)
    edited = {
        **parent,
        "main.py": parent["main.py"] + "\n\ndef unused():\n    return 0\n",
        "notes.md": "hi\n",
    }
    child = child_from_edited_tree(task, parent, edited)
    assert isinstance(child, Proposal) and task.tree_of(child.code) == edited
    # Deleting a plain file is allowed; deleting the fixed file or a file with an EVOLVE block is not.
    assert isinstance(
        child_from_edited_tree(task, parent, {k: v for k, v in edited.items() if k != "notes.md"}), Proposal
    )
    gone = child_from_edited_tree(task, parent, {k: v for k, v in parent.items() if k != "checks.py"})
    assert (
        isinstance(gone, Rejection)
        and gone.status == "rejected_forbidden"
        and "deletes checks.py" in gone.reason
    )
    blockless = child_from_edited_tree(task, parent, {k: v for k, v in parent.items() if k != "heuristic.py"})
    assert isinstance(blockless, Rejection) and blockless.status == "rejected_outside_block"
    escaped = child_from_edited_tree(task, parent, {**parent, "../x.py": "x = 1\n"})
    assert isinstance(escaped, Rejection) and escaped.status == "rejected_forbidden"


def test_dedup_hashes_trees_per_file(task):
    seed = task.tree_of(task.seed_code)
    recommented = {**seed, "main.py": "# a comment\n" + seed["main.py"]}
    moved = {**seed, "main.py": seed["checks.py"], "checks.py": seed["main.py"]}
    assert code_hash_of(task, task.code_of(recommented)) == code_hash_of(task, task.seed_code)
    assert code_hash_of(task, task.code_of(moved)) != code_hash_of(task, task.seed_code)


def test_single_file_tasks_keep_their_one_file_form(toy_task):
    toy = load_task(toy_task)
    assert not toy.folder and toy.tree_of(toy.seed_code) == {"program.py": toy.seed_code}
    edited = {"program.py": toy.seed_code.replace("return 0.0", "return 1.0")}
    child = child_from_edited_tree(toy, toy.tree_of(toy.seed_code), edited)
    assert isinstance(child, Proposal) and child.code == edited["program.py"]
    extra = child_from_edited_tree(toy, toy.tree_of(toy.seed_code), {**edited, "other.py": "x = 1\n"})
    assert isinstance(extra, Rejection) and extra.status == "rejected_forbidden"


def test_folder_task_problems_are_named_with_their_fix(tmp_path):
    task = tmp_path / "t"
    shutil.copytree(TASK, task)
    toml = task / "task.toml"
    toml.write_text(toml.read_text().replace('fixed_files = ["checks.py"]', 'fixed_files = ["nope.py"]'))
    (task / "solver" / "heuristic.py").write_text("# EVOLVE-BLOCK-START\ndef priority(:\n")
    with pytest.raises(UserError) as err:
        load_task(task)
    text = str(err.value)
    assert (
        "fixed_files names 'nope.py'" in text and "heuristic.py:2: the seed file is not valid Python" in text
    )
    assert "EVOLVE-BLOCK-END" in text


def test_novelty_and_prompts_see_every_file_of_a_tree(task):
    from discovery.program.blocks import evolvable
    from discovery.search.strategies.novelty import similarity

    seed = task.tree_of(task.seed_code)
    other_main = {**seed, "main.py": "def solve(values, weights, capacity):\n    return list(range(3))\n"}
    # Only heuristic.py has an EVOLVE block, yet a change to main.py is a change of the candidate;
    # the fixed code around heuristic.py's block is left out, as for a single-file program.
    shown = evolvable(task.seed_code)
    assert "# ==== FILE: main.py ====" in shown and "def solve(" in shown and "return value" in shown
    assert "How promising" not in shown
    assert similarity(task.seed_code, task.code_of(other_main)) < 0.9


def test_a_file_line_holds_for_the_blocks_after_it_and_code_lines_are_not_names(task):
    # `path: os.sep` looks like a file line, but it is code inside a block: never a file name.
    reply = "File: main.py\n" + sr("    return chosen", "    path: os.sep\n    return chosen")
    reply += sr("    chosen, load = [], 0", "    chosen, load = [], 0  # kept")
    child = child_tree(task, reply)
    assert "path: os.sep" in child["main.py"] and "# kept" in child["main.py"]
