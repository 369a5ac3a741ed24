"""Multi-step arithmetic word problems with exact integer answers, generated from (split, seed).

No download: every problem comes from a template filled with numbers drawn from a random stream
keyed by (split, seed, index), so a split is the same on every machine and train and held-out
never share a stream. Each template takes two to four arithmetic steps (GSM8K-like, easier).
"""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import NamedTuple

SPLITS = {"train": 0, "heldout": 1}
SIZES = {"train": 20, "heldout": 40, "smoke": 5}
NAMES = ("Ava", "Ben", "Chloe", "Diego", "Emma", "Farid", "Grace", "Hiro", "Ines", "Jonas", "Kira", "Liam")
ITEMS = ("apples", "stickers", "marbles", "cookies", "pencils", "cards", "shells", "coins")


class Problem(NamedTuple):
    """One word problem and its exact answer."""

    question: str
    answer: int


def _buy_and_give(r: random.Random) -> Problem:
    name, item = r.choice(NAMES), r.choice(ITEMS)
    have, packs, per, give = r.randint(3, 40), r.randint(2, 9), r.randint(3, 12), r.randint(1, 20)
    q = (
        f"{name} has {have} {item}. {name} buys {packs} packs with {per} {item} in each pack, "
        f"then gives {give} {item} to a friend. How many {item} does {name} have now?"
    )
    return Problem(q, have + packs * per - give)


def _change(r: random.Random) -> Problem:
    name = r.choice(NAMES)
    price, count, extra = r.randint(2, 15), r.randint(2, 8), r.randint(1, 9)
    bill = next(b for b in (20, 50, 100, 200, 500) if b >= price * count + extra)
    q = (
        f"Notebooks cost {price} dollars each. {name} buys {count} notebooks and a pen for {extra} dollars, "
        f"and pays with a {bill}-dollar bill. How many dollars of change does {name} get?"
    )
    return Problem(q, bill - price * count - extra)


def _trip(r: random.Random) -> Problem:
    v1, h1, v2, h2 = r.randint(30, 90), r.randint(1, 5), r.randint(20, 80), r.randint(1, 4)
    q = (
        f"A bus drives at {v1} km per hour for {h1} hour{'s' if h1 > 1 else ''}, then at {v2} km per hour for {h2} hour{'s' if h2 > 1 else ''}. "
        "How many kilometres does it drive in total?"
    )
    return Problem(q, v1 * h1 + v2 * h2)


def _groups(r: random.Random) -> Problem:
    size, groups, markers, spare = r.randint(3, 8), r.randint(3, 12), r.randint(2, 6), r.randint(0, 15)
    q = (
        f"A class of {size * groups} students is split into groups of {size}. Each group gets {markers} markers, "
        f"and the teacher keeps {spare} spare markers. How many markers are there in total?"
    )
    return Problem(q, groups * markers + spare)


def _discount(r: random.Random) -> Problem:
    name = r.choice(NAMES)
    # A multiple of 20 keeps every sale price whole for 10, 20, 25 and 50 % off.
    price, pct, count = r.randint(1, 15) * 20, r.choice((10, 20, 25, 50)), r.randint(2, 5)
    q = (
        f"A jacket costs {price} dollars. During a sale it is {pct}% off. {name} buys {count} jackets at the "
        "sale price. How many dollars does {name} pay?"
    ).replace("{name}", name)
    assert price * (100 - pct) % 100 == 0
    return Problem(q, price * (100 - pct) // 100 * count)


def _tank(r: random.Random) -> Problem:
    start, fill, minutes, used = r.randint(10, 100), r.randint(2, 9), r.randint(5, 30), r.randint(5, 60)
    q = (
        f"A tank holds {start} litres of water. A pump adds {fill} litres per minute for {minutes} minutes, "
        f"then {used} litres are used. How many litres are in the tank?"
    )
    return Problem(q, start + fill * minutes - used)


def _savings(r: random.Random) -> Problem:
    name = r.choice(NAMES)
    weekly, weeks, spent, gift = r.randint(5, 25), r.randint(3, 12), r.randint(5, 40), r.randint(10, 50)
    q = (
        f"{name} saves {weekly} dollars every week for {weeks} weeks, receives a gift of {gift} dollars, "
        f"and spends {spent} dollars on a game. How many dollars does {name} have left?"
    )
    return Problem(q, weekly * weeks + gift - spent)


def _shelves(r: random.Random) -> Problem:
    cases, shelves, per, removed = r.randint(2, 6), r.randint(2, 5), r.randint(4, 15), r.randint(1, 10)
    q = (
        f"A library has {cases} bookcases. Each bookcase has {shelves} shelves with {per} books on each shelf. "
        f"{removed} books are borrowed. How many books are still on the shelves?"
    )
    return Problem(q, cases * shelves * per - removed)


TEMPLATES: tuple[Callable[[random.Random], Problem], ...] = (
    _buy_and_give,
    _change,
    _trip,
    _groups,
    _discount,
    _tank,
    _savings,
    _shelves,
)


def make_problems(split: str, seed: int, stage: str | None = None) -> list[Problem]:
    """The problems of a split: deterministic in (split, seed), disjoint streams across splits."""
    if split not in SPLITS:
        raise ValueError(f"math_agent has splits {sorted(SPLITS)}, not {split!r}")
    count = SIZES["smoke" if stage == "smoke" else split]
    out = []
    for k in range(count):
        r = random.Random(f"math_agent:{SPLITS[split]}:{seed}:{k}")
        out.append(r.choice(TEMPLATES)(r))
    return out
