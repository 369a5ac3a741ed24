"""Pack 26 circles in the unit square, maximising the sum of their radii (an OpenEvolve-format task)."""

import numpy as np


# EVOLVE-BLOCK-START
def construct_packing():
    """Centres on two rings around the middle, one circle in a corner; radii as large as they fit."""
    n = 26
    centers = np.zeros((n, 2))
    centers[0] = [0.5, 0.5]
    for i in range(8):
        angle = 2 * np.pi * i / 8
        centers[1 + i] = [0.5 + 0.3 * np.cos(angle), 0.5 + 0.3 * np.sin(angle)]
    for i in range(16):
        angle = 2 * np.pi * i / 16
        centers[9 + i] = [0.5 + 0.7 * np.cos(angle), 0.5 + 0.7 * np.sin(angle)]
    centers[25] = [0.1, 0.1]
    centers = np.clip(centers, 0.01, 0.99)
    radii = compute_max_radii(centers)
    return centers, radii, float(np.sum(radii))


def compute_max_radii(centers):
    """Each radius starts at the distance to the nearest wall; overlapping pairs shrink in proportion."""
    n = len(centers)
    radii = np.array([min(x, y, 1 - x, 1 - y) for x, y in centers])
    for i in range(n):
        for j in range(i + 1, n):
            d = np.sqrt(np.sum((centers[i] - centers[j]) ** 2))
            if radii[i] + radii[j] > d:
                scale = d / (radii[i] + radii[j])
                radii[i] *= scale
                radii[j] *= scale
    return radii


# EVOLVE-BLOCK-END


def run_packing():
    """The entry point the evaluator calls."""
    centers, radii, sum_radii = construct_packing()
    return centers, radii, sum_radii
