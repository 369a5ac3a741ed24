"""A coding agent: solve(repo, problem, test_command) fixes a bug in a small repository with LLM calls."""

import re

from discovery_harness import llm
from discovery_harness.repo import Repo, ToolError


# EVOLVE-BLOCK-START
def solve(repo_path: str, problem: str, test_command: list[str]) -> str:
    """Edit and test: show the model the code and the test output, write back its file, repeat."""
    repo = Repo(repo_path, test_command)
    passed, output = repo.run_tests()
    for attempt in range(3):
        if passed and attempt:
            return "the visible tests pass"
        sources = [p for p in repo.files() if p.endswith(".py") and not p.startswith("test_")]
        shown = "\n\n".join(f"FILE: {p}\n```python\n{repo.read(p)}```" for p in sources)
        prompt = (
            f"{problem}\n\n{shown}\n\nThe visible tests {'pass' if passed else 'fail'}:\n{output[-1500:]}\n\n"
            "Reply with the whole corrected file: a line 'FILE: <name>' then one ```python block."
        )
        try:
            reply = llm.chat([{"role": "user", "content": prompt}], temperature=0.0, max_tokens=768)
        except llm.LLMError as exc:
            return f"stopped: {exc}"
        name = re.search(r"FILE:\s*([\w./-]+\.py)", reply)
        code = re.search(r"```(?:python)?\n(.*)```", reply, re.DOTALL)  # to the last fence: code may hold one
        if code is None:
            continue
        try:
            repo.write(name.group(1) if name else sources[0], code.group(1))
        except ToolError:
            continue
        passed, output = repo.run_tests()
    return "the visible tests pass" if passed else "gave up"


# EVOLVE-BLOCK-END
