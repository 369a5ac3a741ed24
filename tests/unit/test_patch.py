"""Reply parsing: diffs, full rewrites, block-only replies, and every rejection reason."""

from __future__ import annotations

import pytest

from discovery.program.blocks import normalise, split_block
from discovery.program.patch import Proposal, Rejection, build_program

PARENT = """import math

# EVOLVE-BLOCK-START
def solve():
    x = 1.0
    return x
# EVOLVE-BLOCK-END


def main():
    return solve()
"""


def fenced(code: str) -> str:
    return f"Here you go:\n```python\n{code}```\nDone."


def test_block_reply_is_spliced_between_fixed_code():
    result = build_program(fenced("def solve():\n    return 3.0\n"), PARENT)
    assert isinstance(result, Proposal) and result.kind == "block"
    assert result.code.startswith("import math\n\n# EVOLVE-BLOCK-START\ndef solve():\n    return 3.0\n")
    assert result.code.endswith("def main():\n    return solve()\n")


def test_full_rewrite_keeps_parent_fixed_code_exactly():
    child = PARENT.replace("x = 1.0", "x = 2.0").replace("import math\n", "import math   \n")
    result = build_program(fenced(child), PARENT)
    assert isinstance(result, Proposal) and result.kind == "full"
    assert "x = 2.0" in result.code
    assert result.code.startswith("import math\n")  # the parent's bytes, not the reply's whitespace


def test_full_rewrite_that_drops_fixed_code_is_rejected():
    child = "# EVOLVE-BLOCK-START\ndef solve():\n    return 3\n# EVOLVE-BLOCK-END\n"
    result = build_program(fenced(child), PARENT)
    assert isinstance(result, Rejection) and result.status == "rejected_outside_block"
    assert "before" in result.reason


def test_edit_after_block_is_rejected():
    child = PARENT.replace("return solve()", "return 99")
    result = build_program(fenced(child), PARENT)
    assert isinstance(result, Rejection) and result.status == "rejected_outside_block"
    assert "after" in result.reason


def test_diff_applies_exactly():
    reply = "<<<<<<< SEARCH\n    x = 1.0\n=======\n    x = 3.0\n>>>>>>> REPLACE\n"
    result = build_program(reply, PARENT)
    assert isinstance(result, Proposal) and result.kind == "diff"
    assert "    x = 3.0\n" in result.code and "x = 1.0" not in result.code


def test_diff_tolerates_wrong_indentation():
    reply = "<<<<<<< SEARCH\nx = 1.0\nreturn x\n=======\nx = 3.0\nreturn x * 1\n>>>>>>> REPLACE"
    result = build_program(reply, PARENT)
    assert isinstance(result, Proposal)
    assert "    x = 3.0\n    return x * 1\n" in result.code


def test_diff_touching_fixed_code_is_rejected():
    reply = "<<<<<<< SEARCH\n    return solve()\n=======\n    return 42\n>>>>>>> REPLACE"
    result = build_program(reply, PARENT)
    assert isinstance(result, Rejection) and result.status == "rejected_outside_block"


def test_diff_with_unknown_search_is_rejected_with_its_text():
    reply = "<<<<<<< SEARCH\n    y = 7\n=======\n    y = 8\n>>>>>>> REPLACE"
    result = build_program(reply, PARENT)
    assert isinstance(result, Rejection) and result.status == "rejected_patch"
    assert "y = 7" in result.reason


@pytest.mark.parametrize(
    "reply",
    [
        "I think you should make x bigger.",
        "Sure! Let me explain the approach in words only.",
    ],
)
def test_prose_is_rejected(reply):
    result = build_program(reply, PARENT)
    assert isinstance(result, Rejection) and result.status == "rejected_unparseable"


@pytest.mark.parametrize(
    "body",
    [
        "# your code here\n",
        "def solve():\n    # ... rest of the code\n    return {code}\n",
        "def solve():\n    ...\n",
        '"""An improved solve."""\n',
    ],
)
def test_placeholders_are_rejected(body):
    result = build_program(fenced(body), PARENT)
    assert isinstance(result, Rejection) and result.status == "rejected_unparseable", result


def test_syntax_error_is_rejected_with_line():
    result = build_program(fenced("def solve(:\n    return 1\n"), PARENT)
    assert isinstance(result, Rejection) and result.status == "rejected_syntax"
    assert "line" in result.reason


def test_bare_code_without_fence_is_accepted():
    result = build_program("def solve():\n    return 2.0\n", PARENT)
    assert isinstance(result, Proposal) and "return 2.0" in result.code


def test_normalise_ignores_comments_and_layout():
    a = "def f(x):\n    # a comment\n    return x+1\n"
    b = "def f(x):\n\n    return (x + 1)  # another\n"
    assert normalise(a) == normalise(b)
    assert normalise(a) != normalise("def f(x):\n    return x+2\n")


def test_split_block_rejects_missing_or_doubled_markers():
    assert split_block("x = 1\n") is None
    doubled = "# EVOLVE-BLOCK-START\n# EVOLVE-BLOCK-START\nx=1\n# EVOLVE-BLOCK-END\n"
    assert split_block(doubled) is None
    assert split_block(PARENT).body == "def solve():\n    x = 1.0\n    return x\n"


def test_cut_off_code_block_says_so():
    result = build_program("Here:\n```python\ndef solve():\n    return [0.0, 0.0,", PARENT)
    assert isinstance(result, Rejection) and "never closed" in result.reason
