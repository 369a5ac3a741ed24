"""Helpers that task evaluators use inside the sandbox."""

from discovery_harness.candidate import CandidateProcess, CandidateTimeout
from discovery_harness.errors import CandidateError

__all__ = ["CandidateError", "CandidateProcess", "CandidateTimeout"]
