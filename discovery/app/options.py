"""`discovery run` options, generated from RunConfig: each option's name, type, default and help live there.

The README's option table is generated here too (`python -m discovery.app.options`), and a test
fails when the README and the config disagree.
"""

from __future__ import annotations

import types
import typing
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

import click
from pydantic.fields import FieldInfo

from discovery.config import LOCAL_DEFAULTS, RunConfig

# Fields set another way: the task is an argument, models come from --model/--api-base.
NOT_OPTIONS = ("task", "models")
# Options of `discovery run` that are not config fields (documented in the generated table too).
EXTRA_ROWS = (
    (
        "--model NAME[=WEIGHT]",
        "`$DISCOVERY_MODEL`, else `local`",
        "a litellm model string; repeat for an ensemble sampled by weight; or a "
        "[local model](#local-models-by-name-or-path): `local`, `local:NAME`, `local:PATH.gguf`",
    ),
    ("--api-base URL", "", "base URL of an OpenAI-compatible server (with `--model openai/<name>`)"),
    ("--name NAME", "`<task>-<date>-<time>`", "the run's folder name"),
    ("--no-novelty", "", "turn the novelty check off"),
)


def flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def _base_type(annotation: Any) -> Any:
    """The annotation without its `| None`."""
    if isinstance(annotation, types.UnionType) or typing.get_origin(annotation) is typing.Union:
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        return args[0]
    return annotation


def _click_type(annotation: Any) -> Any:
    base = _base_type(annotation)
    if typing.get_origin(base) is Literal:
        return click.Choice([str(a) for a in typing.get_args(base)])
    return base


def _default_text(name: str, field: FieldInfo) -> str:
    extra = field.json_schema_extra or {}
    if isinstance(extra, dict) and "default_text" in extra:
        return str(extra["default_text"])
    if field.default is None:
        return "none"
    if isinstance(field.default, bool):
        return "on" if field.default else "off"
    if name in LOCAL_DEFAULTS:
        return f"{field.default} ({LOCAL_DEFAULTS[name]} for local models)"
    return str(field.default)


def _help(name: str, field: FieldInfo) -> str:
    return f"{field.description} (default: {_default_text(name, field)})"


def config_options(func: Callable) -> Callable:
    """Decorate a click command with one option per RunConfig field; unset options arrive as None."""
    for name, field in reversed(list(RunConfig.model_fields.items())):
        if name in NOT_OPTIONS:
            continue
        kind = _base_type(field.annotation)
        if kind is bool:
            option = click.option(
                f"{flag(name)}/--no-{name.replace('_', '-')}", name, default=None, help=_help(name, field)
            )
        else:
            option = click.option(
                flag(name), name, type=_click_type(field.annotation), default=None, help=_help(name, field)
            )
        func = option(func)
    return func


def _metavar(name: str, field: FieldInfo) -> str:
    kind = _base_type(field.annotation)
    if kind is bool:
        return f"{flag(name)}/--no-{name.replace('_', '-')}"
    if typing.get_origin(kind) is Literal:
        return f"{flag(name)} " + "\\|".join(str(a) for a in typing.get_args(kind))
    return f"{flag(name)} {({int: 'N', float: 'X', str: 'TEXT'}).get(kind, 'VALUE')}"


def markdown_table() -> str:
    """The README's `discovery run` option table."""
    rows = ["| option | default | meaning |", "|---|---|---|"]
    for option, default, meaning in EXTRA_ROWS:
        rows.append(f"| `{option}` | {default} | {meaning} |")
    for name, field in RunConfig.model_fields.items():
        if name in NOT_OPTIONS:
            continue
        rows.append(f"| `{_metavar(name, field)}` | {_default_text(name, field)} | {field.description} |")
    return "\n".join(rows) + "\n"


def write_readme_table(readme: Path) -> None:
    """Replace the table between the run-options markers in the README with markdown_table()."""
    text = readme.read_text()
    start, end = "<!-- run-options:start -->\n", "<!-- run-options:end -->"
    head, rest = text.split(start, 1)
    tail = rest[rest.index(end) :]
    readme.write_text(head + start + markdown_table() + tail)


if __name__ == "__main__":
    write_readme_table(Path(__file__).resolve().parents[2] / "README.md")
