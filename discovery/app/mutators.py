"""Which coding agent makes a run's children (--mutator RUN[:ID] | self), checked before the run starts."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path
from typing import Any

from discovery.archive import Archive
from discovery.domain import Status
from discovery.errors import UserError
from discovery.search.mutator import SELF, Maker, is_coding_agent, parse_spec
from discovery.task import Task

# The archive's meta key holding another run's agent, copied at the start so resume never needs that run.
META_KEY = "mutator_agent"
NOT_AN_AGENT = (
    "it defines no solve(repo_path, problem, test_command): a mutator must be a coding agent, such as a "
    "candidate of a tasks/coding_agent run"
)


def external_maker(run_dir: Path, candidate_id: int | None) -> Maker:
    """Another run's agent: candidate ID, or that run's champion; it must have scored and define solve()."""
    archive = Archive.open_readonly(run_dir)
    try:
        ident = candidate_id if candidate_id is not None else archive.champion_id()
        if ident is None:
            raise UserError(f"--mutator: run {run_dir.name!r} has no candidates yet")
        agent = archive.candidate(ident)
    finally:
        archive.close()
    where = f"--mutator {run_dir.name}:{ident}"
    if agent.status != Status.OK:
        raise UserError(f"{where}: that candidate did not evaluate ok ({agent.status}); pick one that did")
    if not is_coding_agent(agent.code):
        raise UserError(f"{where}: {NOT_AN_AGENT}")
    return Maker(run_dir.name, ident, agent.code)


def check_self(task: Task) -> None:
    """--mutator self needs a task whose candidates are coding agents."""
    if task.spec.agent is None or not is_coding_agent(task.seed_code):
        raise UserError(
            f"--mutator self: the candidates of task {task.name!r} are not coding agents ({NOT_AN_AGENT}); "
            "use --mutator RUN to take the agent of a coding_agent run"
        )


def start_meta(spec: str | None, task: Task, resolve: Callable[[str], Path]) -> dict[str, Any]:
    """Check --mutator at the start of a run; what the archive's meta must keep of it."""
    if spec is None:
        return {}
    if spec == SELF:
        check_self(task)
        return {}
    run, ident = parse_spec(spec)
    return {META_KEY: dataclasses.asdict(external_maker(resolve(run), ident))}


def maker_source(spec: str | None, archive: Archive, run_id: str) -> Callable[[], Maker] | None:
    """The function that names the maker of the next child: fixed, or this run's champion at that moment."""
    if spec is None:
        return None
    if spec == SELF:

        def champion() -> Maker:
            ident = archive.champion_id()
            assert ident is not None  # the seed is recorded before any proposal
            return Maker(run_id, ident, archive.candidate(ident).code, own=True)

        return champion
    maker = Maker(**archive.meta()[META_KEY])
    return lambda: maker
