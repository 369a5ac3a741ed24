"""Errors that are the user's to fix: the CLI prints them as one line, without a traceback."""


class UserError(Exception):
    """A problem with the user's input or set-up; the message names the problem and the fix."""
