"""Stand-ins for the parts of OpenEvolve that an OpenEvolve evaluator.py imports (added to sys.path last)."""
