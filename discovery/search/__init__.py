"""The search: the loop that schedules calls and evaluations, its planner, gate, state and strategies."""
