"""The promotion gate: a challenger replaces the champion only after paired held-out repeats and a test."""

from __future__ import annotations

import logging

from discovery.archive import Archive
from discovery.config import RunConfig
from discovery.domain import Status
from discovery.evaluation.executors import Executor
from discovery.llm.gateway import Gateway
from discovery.search.strategies import promotion
from discovery.task import Task

log = logging.getLogger(__name__)
# Held-out repeats that failed for reasons outside the programs (see Status).
NOT_THE_PROGRAMS_FAULT = frozenset({Status.INFRA_FAILED, Status.EVALUATOR_FAILED})


async def challenge(
    archive: Archive,
    task: Task,
    config: RunConfig,
    executor: Executor,
    run_id: str,
    challenger_id: int,
    gateway: Gateway | None = None,
) -> None:
    """Re-evaluate champion and challenger on held-out seeds, decide, and record the decision."""
    champion = archive.candidate(archive.champion_id())
    challenger = archive.candidate(challenger_id)
    if challenger.id == champion.id or archive.gated(challenger.id) or champion.status != Status.OK:
        return
    if challenger.fitness <= champion.fitness:
        return
    spec = task.spec.evaluation
    split = spec.heldout_split or spec.train_split
    # Seeds apart from the search's, so a train-seed overfit cannot pass on the same draws.
    seeds = [spec.seed + 1000 + k for k in range(config.promotion_repeats)]
    labels = {"discovery.run": run_id, "discovery.gate": str(challenger.id)}
    champion_scores: list[float | None] = []
    challenger_scores: list[float | None] = []
    exact = False
    for seed in seeds:
        for program, scores in ((champion, champion_scores), (challenger, challenger_scores)):
            agent = None
            if gateway is not None and task.spec.agent is not None:
                agent = gateway.sessions(task.spec.agent, program.id, "gate")
            outcome = await executor.evaluate_once(task, program.code, split, seed, labels, agent=agent)
            if outcome.status in NOT_THE_PROGRAMS_FAULT:
                # A lost node or a broken evaluator says nothing about either program: no decision
                # is recorded, so the challenger is tried again at its next chance.
                log.warning(
                    "promotion gate for candidate %s left undecided: %s", challenger.id, outcome.failure
                )
                return
            scores.append(outcome.score if outcome.status == Status.OK else None)
        if challenger_scores[-1] is None:
            break  # a challenger that fails a held-out repeat is never promoted
        exact = looks_deterministic(task.spec.evaluation.deterministic, champion_scores, challenger_scores)
        if exact:
            break  # more repeats would only repeat these scores
    seeds = seeds[: len(challenger_scores)]
    if challenger.metrics.get("flagged") == 1.0:
        decision = promotion.Decision(
            False,
            None,
            float("nan"),
            len(seeds),
            "flagged: speedup beyond the task's plausibility bound",
            None,
        )
    elif exact:
        decision = promotion.decide_exact(
            champion_scores[0], challenger_scores[0], task.maximize, task.spec.objective.tolerance
        )
    else:
        decision = promotion.decide(
            champion_scores,
            challenger_scores,
            task.maximize,
            config.promotion_alpha,
            task.spec.objective.tolerance,
        )
    archive.record_promotion(
        champion.id,
        challenger.id,
        split,
        seeds,
        champion_scores,
        challenger_scores,
        decision.p_value,
        decision.mean_gain,
        task.spec.objective.tolerance,
        config.promotion_alpha,
        decision.promote,
        decision.reason,
        decision.test,
    )


def looks_deterministic(
    declared: bool, champion_scores: list[float | None], challenger_scores: list[float | None]
) -> bool:
    """Whether one comparison decides: the task says so after one pair, or two pairs came out identical."""
    scores = champion_scores + challenger_scores
    if any(s is None for s in scores):
        return False
    if declared:
        return True
    return len(champion_scores) == 2 and (
        champion_scores[0] == champion_scores[1] and challenger_scores[0] == challenger_scores[1]
    )
