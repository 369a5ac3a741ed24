"""A stand-in for the `openevolve` package inside a sandbox: only what evaluators import is here."""
