"""Search strategies: parent selection, islands, MAP-Elites, novelty, bandit, cascade, promotion statistics."""
