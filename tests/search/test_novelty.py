"""Novelty: the lexer, similarity and nearest-neighbour search over archived programs."""

from __future__ import annotations

import argparse
import dataclasses
import inspect
import io
import json.decoder
import textwrap
import tokenize
from pathlib import Path

import pytest

from discovery.program.blocks import evolvable
from discovery.search.strategies.novelty import (
    NoveltyIndex,
    fingerprint,
    nearest,
    similarity,
    tokens,
    too_similar,
)

ROOT = Path(__file__).resolve().parents[2]
SKIPPED = {
    tokenize.COMMENT,
    tokenize.NL,
    tokenize.NEWLINE,
    tokenize.INDENT,
    tokenize.DEDENT,
    tokenize.ENDMARKER,
    tokenize.ENCODING,
}

PROGRAM = '''"""Header."""

# EVOLVE-BLOCK-START
def solve(items, capacity):
    """Pack items first-fit."""
    bins = []  # open bins
    for item in sorted(items, reverse=True):
        for b in bins:
            if sum(b) + item <= capacity:
                b.append(item)
                break
        else:
            bins.append([item])
    return bins
# EVOLVE-BLOCK-END

if __name__ == "__main__":
    print(solve([0.5, 0.7, 0.2], 1.0))
'''


def reference_tokens(code: str) -> list[str]:
    return [t.string for t in tokenize.generate_tokens(io.StringIO(code).readline) if t.type not in SKIPPED]


@pytest.mark.parametrize(
    "path",
    sorted(p.relative_to(ROOT).as_posix() for p in (ROOT / "discovery").glob("*.py"))
    + ["tests/unit/test_patch.py"],
)
def test_lexer_matches_python_tokenize(path):
    code = (ROOT / path).read_text()
    assert tokens(code) == reference_tokens(code)


@pytest.mark.parametrize("module", [argparse, dataclasses, json.decoder, textwrap, tokenize])
def test_lexer_matches_python_tokenize_on_the_standard_library(module):
    code = inspect.getsource(module)
    assert tokens(code) == reference_tokens(code)


def test_lexer_handles_awkward_literals():
    code = "x = rb'a\\'b' + f\"{y!r}\" + '''multi\n'line''' + 0x1F + 1e-3j + .5 ** 2 # trailing\ny //= 3\n"
    assert tokens(code) == reference_tokens(code)


def test_code_that_does_not_tokenize_still_lexes():
    broken = "def f(:\n    return 'unterminated\n  )))"
    assert tokens(broken)  # python's tokenize raises on this
    assert tokens("x'abc' + 1") == ["x", "'abc'", "+", "1"]
    assert similarity(broken, broken) == 1.0


def test_comments_and_layout_do_not_matter():
    relaid = PROGRAM.replace("    ", "  ").replace("# open bins", "# a different comment")
    assert similarity(PROGRAM, relaid) == 1.0


def test_only_the_evolve_block_is_compared():
    assert "Header" not in evolvable(PROGRAM)
    assert similarity(PROGRAM, PROGRAM.replace("Header.", "Another header")) == 1.0


def test_small_edit_is_similar_rewrite_is_not():
    tweak = PROGRAM.replace("reverse=True", "reverse=False")
    rewrite = PROGRAM.replace(
        PROGRAM[PROGRAM.index("def solve") : PROGRAM.index("# EVOLVE-BLOCK-END")],
        "def solve(items, capacity):\n    return [[i] for i in items]\n",
    )
    assert 0.8 < similarity(PROGRAM, tweak) < 1.0
    assert similarity(PROGRAM, rewrite) < 0.3


def test_similarity_is_symmetric_and_bounded():
    other = PROGRAM.replace("first-fit", "best-fit").replace("sum(b)", "len(b)")
    assert similarity(PROGRAM, other) == similarity(other, PROGRAM)
    assert 0.0 <= similarity(PROGRAM, other) <= 1.0


def test_tiny_programs():
    assert similarity("x = 1", "x = 1") == 1.0
    assert similarity("x", "y") == 0.0
    assert similarity("", "") == 1.0
    assert fingerprint("").shingles == frozenset()


def test_nearest_finds_the_closest():
    tweak = PROGRAM.replace("reverse=True", "reverse=False")
    unrelated = "# EVOLVE-BLOCK-START\ndef solve(items, capacity):\n    return []\n# EVOLVE-BLOCK-END\n"
    cid, value = nearest(tweak, [(1, unrelated), (2, PROGRAM), (3, unrelated + "\n")])
    assert cid == 2 and value == similarity(tweak, PROGRAM)
    assert nearest(PROGRAM, []) == (None, 0.0)


def test_index_matches_nearest_and_updates():
    index = NoveltyIndex.build([(1, "a = 1\nb = 2\nc = 3")])
    index.add(2, PROGRAM)
    assert index.nearest(PROGRAM) == (2, 1.0)
    assert index.nearest(PROGRAM) == nearest(PROGRAM, [(1, "a = 1\nb = 2\nc = 3"), (2, PROGRAM)])


def test_threshold():
    assert too_similar(0.96, 0.95)
    assert not too_similar(0.9, 0.95)
    assert not too_similar(1.0, None)


def test_the_novelty_check_is_off_by_default():
    # Changed deliberately (it was 0.95): a rejection spends its LLM call, and a changed constant
    # looked 95 % similar; see README, "Search efficiency".
    from discovery.config import ModelConfig, RunConfig

    assert RunConfig(task="t", models=[ModelConfig(name="m")]).novelty_threshold is None
