"""Novelty rejection: how similar a new program is to archived ones, measured before it is evaluated.

Similarity is the Jaccard index of the two programs' sets of token 4-grams, computed on the EVOLVE
block only (the fixed code around it is the same in every candidate and would only inflate it).
Tokens come from a regular-expression lexer that yields the same tokens as Python's `tokenize` on
valid code (comments, newlines and indentation dropped) at about five times its speed, and never
fails on code that does not tokenize. `NoveltyIndex` keeps archived fingerprints so that one program
is compared against hundreds in a few milliseconds.
"""

from __future__ import annotations

import dataclasses
import re

from discovery.program.blocks import evolvable

SHINGLE = 4  # tokens per n-gram: long enough that shared vocabulary alone does not look similar

_STRING = (
    r"(?:[rRbBuUfF]{1,2})?"
    r"(?:'''(?:[^'\\]|\\.|'(?!''))*'''"
    r'|"""(?:[^"\\]|\\.|"(?!""))*"""'
    r"|'(?:[^'\\\n]|\\.)*'"
    r'|"(?:[^"\\\n]|\\.)*")'
)
_NUMBER = (
    r"0[xX][0-9a-fA-F_]+|0[oO][0-7_]+|0[bB][01_]+|(?:\d[\d_]*\.?[\d_]*|\.\d[\d_]*)(?:[eE][+-]?\d[\d_]*)?[jJ]?"
)
_NAME = r"[^\W\d]\w*+(?!['\"])"
_OPERATOR = r"\*\*=|//=|>>=|<<=|->|:=|\.\.\.|!=|[+\-*/%&|^@<>=]=|\*\*|//|<<|>>|[^\s\w]"
# Whitespace, line continuations and comments match outside the group, so findall yields "" for them (dropped). A name
# directly followed by a quote is a string prefix (rb'..'), so it must not be taken as a name; the
# final \w+ keeps such words in code that is not valid Python.
_LEXER = re.compile(rf"(?:\s|\\\r?\n)+|#[^\n]*|({_NAME}|{_NUMBER}|{_STRING}|{_OPERATOR}|\w+)", re.DOTALL)


def tokens(code: str) -> list[str]:
    """Python tokens of code, without comments, newlines or indentation; any text lexes."""
    return [t for t in _LEXER.findall(code) if t]


@dataclasses.dataclass(frozen=True)
class Fingerprint:
    """What similarity compares: the set of token n-grams (or the tokens themselves when fewer)."""

    # Hashes of the n-grams: ints intersect much faster than tuples. hash() of str varies between
    # processes, so fingerprints are never stored, only rebuilt.
    shingles: frozenset[int]


def fingerprint(code: str, n: int = SHINGLE) -> Fingerprint:
    """The fingerprint of a program's evolvable code."""
    toks = tokens(evolvable(code))
    if len(toks) < n:
        # Tiny programs: one shingle holding every token, so equal programs still compare equal.
        return Fingerprint(frozenset([hash(tuple(toks))]) if toks else frozenset())
    return Fingerprint(frozenset(map(hash, zip(*(toks[i:] for i in range(n)), strict=False))))


def jaccard(a: Fingerprint, b: Fingerprint) -> float:
    """Jaccard index of two fingerprints; two empty programs are identical."""
    if not a.shingles and not b.shingles:
        return 1.0
    shared = len(a.shingles & b.shingles)
    return shared / (len(a.shingles) + len(b.shingles) - shared)


def similarity(a: str, b: str) -> float:
    """Similarity of two programs in [0, 1]; 1 means the same tokens in the same order (up to 4-grams)."""
    return jaccard(fingerprint(a), fingerprint(b))


def nearest(code: str, others: list[tuple[int, str]]) -> tuple[int | None, float]:
    """The most similar of (id, code) pairs and its similarity; (None, 0.0) when there are none."""
    return NoveltyIndex.build(others).nearest(code)


@dataclasses.dataclass
class NoveltyIndex:
    """Fingerprints of archived programs by candidate id, kept so each is computed once."""

    entries: dict[int, Fingerprint] = dataclasses.field(default_factory=dict)

    @classmethod
    def build(cls, programs: list[tuple[int, str]]) -> NoveltyIndex:
        """An index of (id, code) pairs."""
        return cls({cid: fingerprint(code) for cid, code in programs})

    def add(self, candidate_id: int, code: str) -> None:
        """Index one more program (re-adding an id replaces it)."""
        self.entries[candidate_id] = fingerprint(code)

    def nearest(self, code: str) -> tuple[int | None, float]:
        """The indexed program most similar to code, and the similarity; lowest id wins ties."""
        probe = fingerprint(code)
        best_id: int | None = None
        best = 0.0
        for cid in sorted(self.entries):
            value = jaccard(probe, self.entries[cid])
            if best_id is None or value > best:
                best_id, best = cid, value
        return best_id, best


def too_similar(similarity_value: float, threshold: float | None) -> bool:
    """Whether a proposal must be rejected as not novel; threshold None turns the check off."""
    return threshold is not None and similarity_value >= threshold
