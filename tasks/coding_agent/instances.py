"""Bug-fixing instances for coding agents, generated deterministically from correct reference code.

Each reference is a small correct Python module (one public function, sometimes a helper), with
fixed example inputs and a random input drawer. An instance injects one mutation into it (an
off-by-one, a wrong operator, swapped arguments or a missing edge case: a text substitution
declared beside the reference, so every injected bug is known to be real) and ships:

- the repository the agent gets: the buggy module and `test_<module>.py`, the visible tests
  (a plain script of asserts over the fixed examples, at least one of which the bug fails);
- the hidden tests: the examples plus random inputs drawn from (split, seed, instance), with the
  reference's answers. The evaluator builds them in its own memory only after the agent has
  returned, and never writes them to a file.

Train and held-out instances come from different references, so a held-out score measures
whether an agent fixes bugs in code it was never tuned on.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Any, NamedTuple

Args = list[Any]


class Mutation(NamedTuple):
    """One injected bug: its kind and the text substitution that makes it."""

    kind: str
    old: str
    new: str


class Reference(NamedTuple):
    """A correct module, its function, the visible examples and a drawer of random inputs."""

    module: str
    function: str
    source: str
    examples: list[Args]
    draw: Callable[[random.Random], Args]
    mutations: list[Mutation]


class Instance(NamedTuple):
    """A repository with one bug, and the statement an agent is given."""

    name: str
    reference: Reference
    mutation: Mutation
    files: dict[str, str]
    problem: str


def _ints(r: random.Random, low: int = -20, high: int = 20, most: int = 8) -> list[int]:
    """A random list of up to `most` ints in [low, high]."""
    return [r.randint(low, high) for _ in range(r.randint(0, most))]


def _word(r: random.Random, letters: str = "abcdeAEIOUxyz ") -> str:
    """A random string of up to 12 of `letters`."""
    return "".join(r.choice(letters) for _ in range(r.randint(0, 12)))


REFERENCES: dict[str, Reference] = {
    ref.module: ref
    for ref in (
        Reference(
            "totals",
            "running_sum",
            'def running_sum(xs):\n    """The running totals of a list of numbers."""\n    out = []\n'
            "    total = 0\n    for x in xs:\n        total += x\n        out.append(total)\n    return out\n",
            [[[1, 2, 3]], [[]], [[5, -2, 7, 0]]],
            lambda r: [_ints(r)],
            [
                Mutation("wrong_operator", "total += x", "total -= x"),
                Mutation("off_by_one", "in xs:", "in xs[1:]:"),
            ],
        ),
        Reference(
            "vowels",
            "count_vowels",
            'def count_vowels(text):\n    """How many vowels (a, e, i, o, u, in either case) the text holds."""\n'
            '    return sum(1 for ch in text.lower() if ch in "aeiou")\n',
            [["banana"], ["HELLO World"], [""]],
            lambda r: [_word(r)],
            [
                Mutation("missing_edge_case", "text.lower()", "text"),
                Mutation("wrong_operator", "if ch in", "if ch not in"),
            ],
        ),
        Reference(
            "search",
            "binary_search",
            'def binary_search(xs, target):\n    """The index of target in the sorted list xs, or -1."""\n'
            "    lo, hi = 0, len(xs) - 1\n    while lo <= hi:\n        mid = (lo + hi) // 2\n"
            "        if xs[mid] == target:\n            return mid\n        if xs[mid] < target:\n"
            "            lo = mid + 1\n        else:\n            hi = mid - 1\n    return -1\n",
            [[[1, 3, 5, 7], 7], [[2, 4, 6], 2], [[1, 3, 5], 4], [[9], 9]],
            lambda r: (lambda xs: [xs, r.choice(xs + [r.randint(-30, 30)]) if xs else 3])(
                sorted(set(_ints(r, -30, 30, 10)))
            ),
            [
                Mutation("off_by_one", "while lo <= hi", "while lo < hi"),
                Mutation("wrong_operator", "xs[mid] < target", "xs[mid] > target"),
            ],
        ),
        Reference(
            "chunks",
            "chunk",
            'def chunk(xs, size):\n    """xs cut into lists of `size` items (the last may be shorter)."""\n'
            "    return [xs[i:i + size] for i in range(0, len(xs), size)]\n",
            [[[1, 2, 3, 4, 5], 2], [[], 3], [[1, 2, 3], 3]],
            lambda r: [_ints(r, most=12), r.randint(1, 4)],
            [
                Mutation("off_by_one", "xs[i:i + size]", "xs[i:i + size - 1]"),
                Mutation("swapped_arguments", "range(0, len(xs), size)", "range(0, size, len(xs) or 1)"),
            ],
        ),
        Reference(
            "merging",
            "merge_sorted",
            'def merge_sorted(a, b):\n    """The sorted merge of two sorted lists."""\n    out = []\n'
            "    i = j = 0\n    while i < len(a) and j < len(b):\n        if a[i] <= b[j]:\n"
            "            out.append(a[i])\n            i += 1\n        else:\n            out.append(b[j])\n"
            "            j += 1\n    out.extend(a[i:])\n    out.extend(b[j:])\n    return out\n",
            [[[1, 4, 9], [2, 3, 10]], [[], [1, 2]], [[5], []]],
            lambda r: [sorted(_ints(r)), sorted(_ints(r))],
            [
                Mutation("wrong_operator", "a[i] <= b[j]", "a[i] >= b[j]"),
                Mutation("off_by_one", "out.extend(a[i:])", "out.extend(a[i + 1:])"),
            ],
        ),
        Reference(
            "palindromes",
            "is_palindrome",
            'def is_palindrome(text):\n    """Whether text reads the same backwards, ignoring case and non-letters."""\n'
            "    letters = [ch.lower() for ch in text if ch.isalnum()]\n    return letters == letters[::-1]\n",
            [["A man, a plan, a canal: Panama"], ["abc"], [""], ["Noon"]],
            lambda r: (lambda w: [r.choice([w, w + w[::-1], w + "x" + w[::-1].upper()])])(_word(r, "abAB ,")),
            [
                Mutation("missing_edge_case", "ch.lower() for", "ch for"),
                Mutation("wrong_operator", "letters == letters", "letters != letters"),
            ],
        ),
        Reference(
            "rotation",
            "rotate",
            'def rotate(xs, k):\n    """xs rotated right by k places (k may exceed the length or be negative)."""\n'
            "    if not xs:\n        return []\n    k %= len(xs)\n    return xs[-k:] + xs[:-k] if k else list(xs)\n",
            [[[1, 2, 3, 4], 1], [[], 5], [[1, 2, 3], 4]],
            lambda r: [_ints(r), r.randint(-10, 10)],
            [
                Mutation("missing_edge_case", "    if not xs:\n        return []\n", ""),
                Mutation("swapped_arguments", "xs[-k:] + xs[:-k]", "xs[:-k] + xs[-k:]"),
            ],
        ),
        Reference(
            "progress",
            "progress",
            'def percent_of(part, whole):\n    """part as a whole percentage of whole, rounded down."""\n'
            "    return 100 * part // whole\n\n\n"
            'def progress(done, total):\n    """Percent done of a task of `total` steps (0 for an empty task)."""\n'
            "    if total == 0:\n        return 0\n    return percent_of(done, total)\n",
            [[1, 4], [0, 0], [3, 3], [2, 8]],
            lambda r: (lambda t: [r.randint(0, t), t])(r.choice([0, r.randint(1, 50)])),
            [
                Mutation("swapped_arguments", "percent_of(done, total)", "percent_of(total, done or 1)"),
                Mutation("missing_edge_case", "    if total == 0:\n        return 0\n", ""),
            ],
        ),
        Reference(
            "stats",
            "median",
            'def median(xs):\n    """The median of a list of numbers (None for an empty list)."""\n'
            "    if not xs:\n        return None\n    s = sorted(xs)\n    n = len(s)\n"
            "    if n % 2:\n        return s[n // 2]\n    return (s[n // 2 - 1] + s[n // 2]) / 2\n",
            [[[3, 1, 2]], [[4, 1, 3, 2]], [[]]],
            lambda r: [_ints(r)],
            [
                Mutation("off_by_one", "s[n // 2 - 1] + s[n // 2]", "s[n // 2] + s[n // 2 + 1]"),
                Mutation("missing_edge_case", "    if not xs:\n        return None\n", ""),
            ],
        ),
        Reference(
            "fizz",
            "fizzbuzz",
            'def fizzbuzz(n):\n    """FizzBuzz from 1 to n inclusive, as strings."""\n    out = []\n'
            "    for i in range(1, n + 1):\n        if i % 15 == 0:\n            out.append('FizzBuzz')\n"
            "        elif i % 3 == 0:\n            out.append('Fizz')\n        elif i % 5 == 0:\n"
            "            out.append('Buzz')\n        else:\n            out.append(str(i))\n    return out\n",
            [[5], [15], [0]],
            lambda r: [r.randint(0, 40)],
            [
                Mutation("off_by_one", "range(1, n + 1)", "range(1, n)"),
                Mutation("wrong_operator", "i % 15 == 0", "i % 15 != 0"),
            ],
        ),
        Reference(
            "clamping",
            "clamp_all",
            'def clamp(x, lo, hi):\n    """x limited to the range [lo, hi]."""\n    return min(max(x, lo), hi)\n\n\n'
            'def clamp_all(xs, lo, hi):\n    """Every number of xs limited to [lo, hi]."""\n'
            "    return [clamp(x, lo, hi) for x in xs]\n",
            [[[-5, 0, 5, 10], 0, 6], [[], 1, 2], [[3], 3, 3]],
            lambda r: (lambda lo: [_ints(r), lo, lo + r.randint(0, 15)])(r.randint(-10, 5)),
            [
                Mutation("swapped_arguments", "clamp(x, lo, hi) for", "clamp(x, hi, lo) for"),
                Mutation("wrong_operator", "min(max(x, lo), hi)", "max(min(x, lo), hi)"),
            ],
        ),
        Reference(
            "censor",
            "censor",
            'def censor(text, word):\n    """text with every occurrence of word replaced by as many stars."""\n'
            "    if not word:\n        return text\n    return text.replace(word, '*' * len(word))\n",
            [["the cat sat", "cat"], ["aaa", "a"], ["hello", ""]],
            lambda r: (lambda w: [_word(r, "abc ") + w + _word(r, "abc "), r.choice([w, "", "zz"])])(
                _word(r, "abc")
            ),
            [
                Mutation(
                    "swapped_arguments",
                    "text.replace(word, '*' * len(word))",
                    "text.replace('*' * len(word), word)",
                ),
                Mutation("off_by_one", "'*' * len(word))", "'*' * (len(word) - 1))"),
            ],
        ),
        Reference(
            "clock",
            "to_clock",
            'def to_clock(seconds):\n    """seconds as "M:SS" (minutes may exceed 59)."""\n'
            "    minutes, secs = divmod(seconds, 60)\n    return f'{minutes}:{secs:02d}'\n",
            [[75], [0], [600], [59]],
            lambda r: [r.randint(0, 5000)],
            [
                Mutation("swapped_arguments", "divmod(seconds, 60)", "divmod(60, seconds or 1)"),
                Mutation("off_by_one", "divmod(seconds, 60)", "divmod(seconds, 61)"),
            ],
        ),
        Reference(
            "dedupe",
            "unique_in_order",
            'def unique_in_order(xs):\n    """xs without repeated items, keeping the first of each, in order."""\n'
            "    seen = set()\n    out = []\n    for x in xs:\n        if x not in seen:\n"
            "            seen.add(x)\n            out.append(x)\n    return out\n",
            [[[1, 2, 1, 3, 2]], [[]], [[4, 4, 4]]],
            lambda r: [_ints(r, 0, 5, 10)],
            [
                Mutation("wrong_operator", "if x not in seen", "if x in seen"),
                Mutation("missing_edge_case", "            seen.add(x)\n", ""),
            ],
        ),
        Reference(
            "ranges",
            "count_in_range",
            'def count_in_range(xs, lo, hi):\n    """How many numbers of xs lie in [lo, hi], both ends included."""\n'
            "    return sum(1 for x in xs if lo <= x <= hi)\n",
            [[[1, 2, 3, 4, 5], 2, 4], [[], 0, 1], [[7, 7], 7, 7]],
            lambda r: (lambda lo: [_ints(r, -5, 5, 10), lo, lo + r.randint(0, 5)])(r.randint(-5, 5)),
            [
                Mutation("off_by_one", "lo <= x <= hi", "lo <= x < hi"),
                Mutation("swapped_arguments", "lo <= x <= hi", "hi <= x <= lo"),
            ],
        ),
        Reference(
            "digits",
            "digit_sum",
            'def digit_sum(n):\n    """The sum of the decimal digits of an integer (its sign ignored)."""\n'
            "    n = abs(n)\n    total = 0\n    while n > 0:\n        total += n % 10\n        n //= 10\n"
            "    return total\n",
            [[123], [-45], [0], [9]],
            lambda r: [r.randint(-100000, 100000)],
            [
                Mutation("missing_edge_case", "    n = abs(n)\n", ""),
                Mutation("wrong_operator", "total += n % 10", "total += n // 10"),
            ],
        ),
    )
}
# Train and held-out instances come from disjoint references (eight each).
SPLIT_MODULES = {
    "train": ["totals", "vowels", "search", "chunks", "merging", "palindromes", "rotation", "progress"],
    "heldout": ["stats", "fizz", "clamping", "censor", "clock", "dedupe", "ranges", "digits"],
}
SMOKE_SIZE = 3
RANDOM_TESTS = 30


def call(source: str, function: str, args: Args) -> Any:
    """Run a module's function on args in a fresh namespace (trusted code only: references, bugs)."""
    namespace: dict[str, Any] = {}
    exec(compile(source, "<reference>", "exec"), namespace)  # noqa: S102 - the project's own code
    return namespace[function](*args)


def outcome(source: str, function: str, args: Args) -> tuple[str, Any]:
    """("ok", result) or ("raises", exception name): how code answers one input."""
    try:
        return "ok", call(source, function, args)
    except Exception as exc:  # noqa: BLE001 - an exception is an answer a test can expect
        return "raises", type(exc).__name__


def visible_tests(ref: Reference) -> str:
    """The visible test script: one assert per example, with the reference's answer."""
    lines = [f'"""Tests for {ref.module}.{ref.function}: run `python test_{ref.module}.py`."""', ""]
    lines += [f"from {ref.module} import {ref.function}", "", "", "def main():"]
    for args in ref.examples:
        expected = call(ref.source, ref.function, args)
        shown = ", ".join(repr(a) for a in args)
        lines.append(f"    assert {ref.function}({shown}) == {expected!r}, {ref.function}({shown})")
    lines += ['    print("all tests passed")', "", "", 'if __name__ == "__main__":', "    main()", ""]
    return "\n".join(lines)


def make_instance(module: str, index: int) -> Instance:
    """The instance that injects mutation `index` of a reference."""
    ref = REFERENCES[module]
    mutation = ref.mutations[index]
    assert ref.source.count(mutation.old) == 1, (module, mutation)
    buggy = ref.source.replace(mutation.old, mutation.new)
    problem = (
        f"Bug report: `{ref.function}` in `{ref.module}.py` returns wrong results (or fails) for some "
        f"inputs. Its docstring says what it must do. Fix the bug in `{ref.module}.py` without changing "
        f"the function's name or signature. The visible tests are in `test_{ref.module}.py`; run them "
        f"with `python test_{ref.module}.py`. Hidden tests check more inputs, so fix the cause, not "
        "just the tested cases."
    )
    files = {f"{ref.module}.py": buggy, f"test_{ref.module}.py": visible_tests(ref)}
    return Instance(f"{module}-{mutation.kind}", ref, mutation, files, problem)


def make_instances(split: str, seed: int, stage: str | None = None) -> list[Instance]:
    """A split's instances in a seeded order; stage `smoke` takes the first three, `first-N` the first N."""
    if split not in SPLIT_MODULES:
        raise ValueError(f"unknown split {split!r}; the splits are {', '.join(SPLIT_MODULES)}")
    instances = [make_instance(m, i) for m in SPLIT_MODULES[split] for i in range(2)]
    random.Random(f"order:{split}:{seed}").shuffle(instances)
    if stage == "smoke":
        return instances[:SMOKE_SIZE]
    if stage and stage.startswith("first-") and stage[6:].isdigit() and int(stage[6:]) > 0:
        return instances[: int(stage[6:])]  # a short benchmark (bench/coding_agent.py)
    return instances


def hidden_tests(instance: Instance, split: str, seed: int) -> list[tuple[Args, tuple[str, Any]]]:
    """The hidden tests: every example plus random inputs, each with the reference's outcome."""
    ref = instance.reference
    r = random.Random(f"hidden:{split}:{seed}:{instance.name}")
    inputs = [list(a) for a in ref.examples] + [ref.draw(r) for _ in range(RANDOM_TESTS)]
    return [(args, outcome(ref.source, ref.function, args)) for args in inputs]
