"""Toy candidate: solve() returns a number."""


# EVOLVE-BLOCK-START
def solve():
    return 0.0


# EVOLVE-BLOCK-END


if __name__ == "__main__":
    print(solve())
