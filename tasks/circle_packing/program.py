"""Pack 26 circles in the unit square, maximising the sum of their radii."""

import numpy as np

N_CIRCLES = 26


# EVOLVE-BLOCK-START
def construct_packing() -> tuple[np.ndarray, np.ndarray]:
    """A 5x5 grid of equal circles, plus one small circle in a gap between four of them."""
    grid = (np.arange(5) + 0.5) / 5
    centers = [(x, y) for x in grid for y in grid]
    centers.append((0.2, 0.2))  # the gap between the four circles around (0.2, 0.2)
    centers = np.array(centers)
    return centers, max_radii(centers)


def max_radii(centers: np.ndarray) -> np.ndarray:
    """Greedy radii: each circle, in order, grows until it touches a wall or an earlier circle."""
    n = len(centers)
    radii = np.zeros(n)
    for i in range(n):
        x, y = centers[i]
        r = min(x, y, 1 - x, 1 - y)
        for j in range(i):
            r = min(r, np.linalg.norm(centers[i] - centers[j]) - radii[j])
        radii[i] = max(r, 0.0)
    return radii


# EVOLVE-BLOCK-END


def run_packing() -> tuple[np.ndarray, np.ndarray]:
    """Entry point the evaluator calls: (centers of shape (26, 2), radii of shape (26,))."""
    centers, radii = construct_packing()
    return centers, radii
