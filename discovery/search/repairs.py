"""Which failed candidates get a repair: chains of at most N repairs, and the repairs still owed after a resume.

A candidate that failed its evaluation (its own fault: failed, timeout, memory or output limit) is
fed back with its traceback for a repair; a repair that fails again is repaired again while the
chain of repairs is shorter than the run's limit (RunConfig.repairs_in_a_row). The queue of
repairs lives in memory, so after a resume the repairs owed are found again from the archive:
failures of the candidate's own making that no repair has answered yet.
"""

from __future__ import annotations

from discovery.archive import Archive
from discovery.domain import EVALUATED_FAILURES, Candidate, Operator


def repair_depth(archive: Archive, candidate: Candidate) -> int:
    """How many repairs in a row made this candidate (0 for one that is not a repair)."""
    depth = 0
    while candidate.operator == Operator.REPAIR and candidate.parent_id is not None:
        depth += 1
        candidate = archive.candidate(candidate.parent_id)
    return depth


def wants_repair(archive: Archive, candidate: Candidate, status: str, limit: int) -> bool:
    """Whether a just-evaluated candidate with this status gets a repair under a chain limit."""
    if status not in EVALUATED_FAILURES or candidate.operator == Operator.SEED:
        return False
    return repair_depth(archive, candidate) < limit


def owed(archive: Archive, limit: int) -> list[int]:
    """Failed candidates, oldest first, that should get a repair and have none yet (after a resume)."""
    everyone = archive.candidates()
    repaired = {c.parent_id for c in everyone if c.operator == Operator.REPAIR}
    return [c.id for c in everyone if c.id not in repaired and wants_repair(archive, c, c.status, limit)]
