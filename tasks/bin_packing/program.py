"""Online bin packing: a priority function that decides which bin each arriving item goes into."""

import numpy as np


# EVOLVE-BLOCK-START
def priority(item: float, bins: np.ndarray) -> np.ndarray:
    """Best fit: prefer the bin that the item leaves with the least room to spare."""
    return -(bins - item)


# EVOLVE-BLOCK-END
