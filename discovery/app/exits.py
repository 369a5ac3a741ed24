"""Exit codes of the `discovery` command, one per way a command can end (README, CLI reference)."""

from __future__ import annotations

import enum


class ExitCode(enum.IntEnum):
    """What a script can rely on; the values never change meaning."""

    OK = 0  # a run spent its budget, cost or time limit normally; other commands succeeded
    FAILED_CHECK = 1  # a check said no: a replay that does not hold, an invalid task, no isolating sandbox
    USER_ERROR = 2  # a mistake in the command, its options, a task or the set-up; one line on stderr
    SEED_FAILED = 3  # the task's seed program failed its own evaluation
    PROVIDER = 4  # the run stopped on LLM provider errors
    SANDBOX = 5  # the sandbox backend failed (during a run or a replay), or none is available
    EVALUATOR = 6  # the task's evaluator raised its own errors (not CandidateError) repeatedly
    INTERRUPTED = 130  # Ctrl-C or SIGTERM; the run is resumable


# The search's stop kinds (discovery.search.loop.Search.stop_kind) and how a run exits for each.
STOP_EXITS = {
    "done": ExitCode.OK,
    "seed_failed": ExitCode.SEED_FAILED,
    "provider": ExitCode.PROVIDER,
    "sandbox": ExitCode.SANDBOX,
    "evaluator": ExitCode.EVALUATOR,
    "interrupted": ExitCode.INTERRUPTED,
}
