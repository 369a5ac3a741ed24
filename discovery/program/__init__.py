"""Programs: EVOLVE blocks, turning replies into programs, and the prompts that ask for them."""
