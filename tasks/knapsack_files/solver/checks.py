"""Fixed helpers the candidate uses but may not change."""


def fits(load, weight, capacity):
    """Whether an item of this weight still fits on top of the current load."""
    return load + weight <= capacity
