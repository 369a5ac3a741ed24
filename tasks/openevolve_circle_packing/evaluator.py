"""Evaluator in OpenEvolve's format: evaluate(program_path) -> metrics with combined_score.

The packing is checked strictly (shapes, finite numbers, every circle inside the unit square, no
overlapping pair, tolerance 1e-9); combined_score is the sum of radii over the best known 2.635,
and 0 for an invalid packing.
"""

import importlib.util
import time

import numpy as np

N = 26
BEST_KNOWN = 2.635
TOL = 1e-9


def _load(program_path):
    spec = importlib.util.spec_from_file_location("program", program_path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _problem(centers, radii):
    """Why a packing is invalid, or None."""
    if centers.shape != (N, 2) or radii.shape != (N,):
        return f"shapes {centers.shape} and {radii.shape}, expected ({N}, 2) and ({N},)"
    if not (np.all(np.isfinite(centers)) and np.all(np.isfinite(radii))):
        return "NaN or infinite values"
    if np.any(radii < 0):
        return "a negative radius"
    low = centers - radii[:, None]
    high = centers + radii[:, None]
    if np.any(low < -TOL) or np.any(high > 1 + TOL):
        return "a circle sticks out of the unit square"
    for i in range(N):
        for j in range(i + 1, N):
            if np.linalg.norm(centers[i] - centers[j]) < radii[i] + radii[j] - TOL:
                return f"circles {i} and {j} overlap"
    return None


def evaluate(program_path):
    """Run the program's run_packing() and score the packing it returns."""
    started = time.time()
    try:
        centers, radii, _reported = _load(program_path).run_packing()
        centers = np.asarray(centers, dtype=float)
        radii = np.asarray(radii, dtype=float)
        problem = _problem(centers, radii)
    except Exception as exc:  # OpenEvolve evaluators score a crash as 0 and say why
        return {
            "sum_radii": 0.0,
            "target_ratio": 0.0,
            "validity": 0.0,
            "combined_score": 0.0,
            "error": str(exc),
        }
    elapsed = time.time() - started
    if problem:
        return {
            "sum_radii": 0.0,
            "target_ratio": 0.0,
            "validity": 0.0,
            "combined_score": 0.0,
            "error": problem,
        }
    total = float(np.sum(radii))
    return {
        "sum_radii": total,
        "target_ratio": total / BEST_KNOWN,
        "validity": 1.0,
        "eval_time": elapsed,
        "combined_score": total / BEST_KNOWN,
    }
