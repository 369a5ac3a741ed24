"""Trusted evaluator: 26 circles in the unit square; score = sum of radii of a strictly valid packing.

The candidate runs in a child process (discovery_harness.CandidateProcess) and only returns
numbers. Everything is checked here, with tolerance TOL: shape, finiteness, radii >= 0, every
circle inside [0, 1]^2, no overlapping pair. The score is recomputed from the returned radii.
"""

from __future__ import annotations

import math
import time
import tomllib
from pathlib import Path

import numpy as np
from discovery_harness import CandidateError, CandidateProcess

N_CIRCLES = 26
TOL = 1e-9
BEST_KNOWN = 2.6358  # AlphaEvolve (2025) reports 2.635 for n = 26
CONTACT_SLACK = 1e-6  # a constraint this close to binding counts as a contact in the feedback


def _time_budget_s() -> float:
    """Seconds the candidate may use: the task's timeout, less a margin so we report before a kill."""
    spec = tomllib.loads((Path(__file__).parent / "task.toml").read_text())
    timeout_s = float(spec.get("resources", {}).get("timeout_s", 30.0))
    return max(1.0, 0.8 * timeout_s - 1.0)


def _as_array(value: object, shape: tuple[int, ...], what: str) -> np.ndarray:
    """A float array of exactly `shape` made of real numbers, or CandidateError naming the problem."""
    try:
        array = np.asarray(value)
    except (ValueError, TypeError) as exc:
        raise CandidateError(
            f"{what} must be an array of shape {shape}; got a ragged sequence ({exc})"
        ) from None
    if array.shape != shape:
        raise CandidateError(f"{what} must have shape {shape}, got shape {array.shape}")
    if array.dtype.kind not in "iuf":
        raise CandidateError(f"{what} must hold real numbers, got elements of dtype {array.dtype}")
    return array.astype(np.float64)


def parse_result(result: object) -> tuple[np.ndarray, np.ndarray, float | None]:
    """Split run_packing()'s return value into centers, radii and an optional reported sum."""
    if not isinstance(result, list) or len(result) not in (2, 3):
        kind = f"a sequence of length {len(result)}" if isinstance(result, list) else type(result).__name__
        raise CandidateError(
            f"run_packing() must return (centers, radii) or (centers, radii, sum_radii); got {kind}"
        )
    centers = _as_array(result[0], (N_CIRCLES, 2), "centers")
    radii = _as_array(result[1], (N_CIRCLES,), "radii")
    reported = None
    if len(result) == 3:
        if isinstance(result[2], bool) or not isinstance(result[2], (int, float)):
            raise CandidateError(f"the reported sum_radii must be a number, got {type(result[2]).__name__}")
        reported = float(result[2])
    return centers, radii, reported


def check_packing(centers: np.ndarray, radii: np.ndarray) -> None:
    """Raise CandidateError on the worst violation: non-finite, negative, outside the square, overlap."""
    bad = np.flatnonzero(~np.isfinite(centers).all(axis=1) | ~np.isfinite(radii))
    if bad.size:
        i = int(bad[0])
        raise CandidateError(
            f"circle {i} is not finite (center {centers[i].tolist()}, radius {radii[i]}); "
            f"{bad.size} circle(s) have NaN or inf values"
        )
    negative = np.flatnonzero(radii < 0)
    if negative.size:
        i = int(negative[np.argmin(radii[negative])])
        raise CandidateError(f"circle {i} has a negative radius {radii[i]:.6g}; radii must be >= 0")
    # How far each circle sticks out past each wall (x=0, y=0, x=1, y=1); > TOL is a violation.
    excess = np.stack(
        [radii - centers[:, 0], radii - centers[:, 1], centers[:, 0] + radii - 1, centers[:, 1] + radii - 1],
        axis=1,
    )
    if excess.max() > TOL:
        i, side = np.unravel_index(int(np.argmax(excess)), excess.shape)
        wall = ("x = 0", "y = 0", "x = 1", "y = 1")[side]
        count = int((excess.max(axis=1) > TOL).sum())
        raise CandidateError(
            f"circle {i} (center ({centers[i, 0]:.9g}, {centers[i, 1]:.9g}), radius {radii[i]:.9g}) extends "
            f"past the wall {wall} by {excess[i, side]:.3g}; {count} circle(s) are not inside the unit square"
        )
    overlap = _pair_overlaps(centers, radii)
    if overlap.max() > TOL:
        i, j = np.unravel_index(int(np.argmax(overlap)), overlap.shape)
        count = int((overlap > TOL).sum())
        distance = float(np.linalg.norm(centers[i] - centers[j]))
        raise CandidateError(
            f"circles {i} and {j} overlap by {overlap[i, j]:.3g} (distance between centers {distance:.9g} < "
            f"radii sum {radii[i] + radii[j]:.9g}); {count} overlapping pair(s) in total"
        )


def _pair_overlaps(centers: np.ndarray, radii: np.ndarray, upper_only: bool = True) -> np.ndarray:
    """r_i + r_j - |c_i - c_j| for each pair (only i < j when upper_only), -inf elsewhere."""
    distance = np.linalg.norm(centers[:, None, :] - centers[None, :, :], axis=-1)
    overlap = radii[:, None] + radii[None, :] - distance
    np.fill_diagonal(overlap, -np.inf)
    if upper_only:
        overlap[np.tril_indices(len(radii))] = -np.inf
    return overlap


def describe(centers: np.ndarray, radii: np.ndarray, score: float) -> tuple[dict[str, float], str]:
    """Metrics and a short feedback text: the sum, contacts, and circles that could still grow."""
    overlap = _pair_overlaps(centers, radii, upper_only=False)
    pair_contacts = int((overlap > -CONTACT_SLACK).sum()) // 2
    wall_gap = (
        np.stack([centers[:, 0], centers[:, 1], 1 - centers[:, 0], 1 - centers[:, 1]], axis=1)
        - radii[:, None]
    )
    wall_contacts = int((wall_gap < CONTACT_SLACK).sum())
    # Slack of circle i: how much it could grow with every other circle fixed.
    slack = np.minimum(wall_gap.min(axis=1), -overlap.max(axis=1))
    loose = [int(i) for i in np.argsort(-slack)[:3] if slack[i] > CONTACT_SLACK]
    lines = [
        f"valid packing; sum of radii = {score:.6f} (best known for 26 circles ~ {BEST_KNOWN}).",
        f"radii range {radii.min():.4f} .. {radii.max():.4f}; "
        f"{pair_contacts} circle-circle and {wall_contacts} circle-wall contacts (within {CONTACT_SLACK:g}).",
    ]
    if loose:
        lines.append(
            "circles that could still grow without moving anything: "
            + ", ".join(f"circle {i} by {slack[i]:.4g}" for i in loose)
            + "."
        )
    else:
        lines.append("every circle is blocked: improve by moving circles, not only by growing them.")
    metrics = {
        "min_radius": float(radii.min()),
        "max_radius": float(radii.max()),
        "contacts": float(pair_contacts + wall_contacts),
        "gap_to_best_known": BEST_KNOWN - score,
    }
    return metrics, "\n".join(lines)


def evaluate(candidate_path: str, split: str = "train", seed: int = 0) -> dict[str, object]:
    """Call run_packing() in a child process, check the packing strictly, score the sum of radii."""
    if split != "train":
        # The problem is deterministic: there is no other instance to hold out.
        raise ValueError(f"circle_packing has only the 'train' split, not {split!r}")
    budget_s = _time_budget_s()
    started = time.monotonic()
    with CandidateProcess(candidate_path, timeout_s=budget_s) as proc:
        result = proc.call("run_packing", timeout_s=max(0.1, budget_s - (time.monotonic() - started)))
    centers, radii, reported = parse_result(result)
    check_packing(centers, radii)
    score = math.fsum(radii.tolist())
    if reported is not None and abs(reported - score) > 1e-6:
        raise CandidateError(
            f"run_packing() reported sum_radii = {reported:.9g}, but the returned radii sum to {score:.9g}"
        )
    metrics, feedback = describe(centers, radii, score)
    return {"score": score, **metrics, "feedback": feedback}
