"""Errors an evaluator raises to say the candidate (not the evaluator) is at fault."""


class CandidateError(Exception):
    """The candidate's output is invalid; the message is shown to the LLM as the failure reason."""
