"""A coding agent's tools on its copy of a repository: list, read, write, run the visible tests.

    from discovery_harness.repo import Repo
    repo = Repo(root, test_command)
    repo.files()                       # ['calc.py', 'test_calc.py']
    repo.read("calc.py"); repo.write("calc.py", text)
    passed, output = repo.run_tests()

Paths are relative, inside the repository; `..`, absolute paths and symbolic links out of it are
refused with ToolError (a message a model can act on). These checks are for the agent's own good:
the agent is untrusted code and could call open() itself, so what keeps it in its copy is the
Landlock confinement its evaluator puts it under (discovery_harness.confine), not this class.
"""

from __future__ import annotations

import os
import subprocess
import sys

MAX_FILE_BYTES = 256 * 1024
OUTPUT_CHARS = 4000


class ToolError(ValueError):
    """A tool call the agent got wrong (bad path, file too large); the message says how."""


class Repo:
    """The agent's working copy of a repository, with the test command it may run."""

    def __init__(self, root: str, test_command: list[str] | None = None, timeout_s: float = 30.0) -> None:
        self.root = os.path.realpath(root)
        self.test_command = list(test_command or [])
        self.timeout_s = timeout_s

    def _path(self, relative: str) -> str:
        """The real path of a file of the repository, or ToolError."""
        if not isinstance(relative, str) or not relative or os.path.isabs(relative):
            raise ToolError(f"{relative!r}: give a path relative to the repository, e.g. 'calc.py'")
        path = os.path.realpath(os.path.join(self.root, relative))
        if not path.startswith(self.root + os.sep):
            raise ToolError(f"{relative!r} is outside the repository")
        return path

    def files(self) -> list[str]:
        """Every file of the repository, as sorted relative posix paths."""
        found = []
        for folder, dirs, names in os.walk(self.root):
            dirs[:] = sorted(d for d in dirs if not d.startswith(".") and d != "__pycache__")
            rel = os.path.relpath(folder, self.root)
            found += [n if rel == "." else f"{rel}/{n}".replace(os.sep, "/") for n in names]
        return sorted(found)

    def read(self, relative: str) -> str:
        """A file's text."""
        path = self._path(relative)
        if not os.path.isfile(path):
            raise ToolError(f"{relative!r} does not exist; the files are: {', '.join(self.files())}")
        with open(path, encoding="utf-8", errors="replace") as f:
            return f.read(MAX_FILE_BYTES)

    def write(self, relative: str, text: str) -> None:
        """Replace (or create) a file with `text`."""
        if not isinstance(text, str) or len(text.encode()) > MAX_FILE_BYTES:
            raise ToolError(
                f"write {relative!r}: give the whole file as a string under {MAX_FILE_BYTES} bytes"
            )
        path = self._path(relative)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "w", encoding="utf-8") as f:
            f.write(text)

    def replace(self, relative: str, old: str, new: str) -> None:
        """Replace the one occurrence of `old` in a file by `new` (ToolError if not exactly one)."""
        text = self.read(relative)
        count = text.count(old) if old else 0
        if count != 1:
            raise ToolError(f"{relative!r}: the text to replace occurs {count} times; it must occur once")
        self.write(relative, text.replace(old, new))

    def run_tests(self) -> tuple[bool, str]:
        """Run the visible tests in the repository: (all passed, the output's tail)."""
        if not self.test_command:
            return True, "no tests to run here"
        try:
            done = subprocess.run(
                [sys.executable if part == "python" else part for part in self.test_command],
                cwd=self.root,
                stdin=subprocess.DEVNULL,
                capture_output=True,
                text=True,
                timeout=self.timeout_s,
            )
        except subprocess.TimeoutExpired:
            return False, f"the tests did not finish within {self.timeout_s:.0f} s"
        output = (done.stdout + done.stderr)[-OUTPUT_CHARS:]
        return done.returncode == 0, output or f"exit code {done.returncode}"
