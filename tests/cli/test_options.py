"""One home for each default: `discovery run` options and the README's table come from RunConfig."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from discovery.app import options
from discovery.app.cli import _build_config, cli
from discovery.config import RunConfig

README = Path(__file__).resolve().parents[2] / "README.md"


def test_readme_option_table_is_the_generated_one() -> None:
    text = README.read_text()
    start, end = "<!-- run-options:start -->\n", "<!-- run-options:end -->"
    shown = text[text.index(start) + len(start) : text.index(end)]
    assert shown == options.markdown_table(), (
        "README's `discovery run` table is stale: regenerate it with `python -m discovery.app.options`"
    )


def test_every_config_field_is_a_run_option() -> None:
    flags = {o for p in cli.commands["run"].params for o in p.opts + p.secondary_opts}
    missing = [
        options.flag(n)
        for n in RunConfig.model_fields
        if n not in options.NOT_OPTIONS and options.flag(n) not in flags
    ]
    assert not missing


def test_unset_options_take_the_config_defaults_and_set_ones_are_validated() -> None:
    config = _build_config(
        "t",
        ("gpt-4o-mini",),
        None,
        **{n: None for n in RunConfig.model_fields if n not in options.NOT_OPTIONS},
    )
    assert config == RunConfig(task="t", models=[{"name": "gpt-4o-mini"}])
    with pytest.raises(ValueError, match="budget"):
        _build_config("t", ("gpt-4o-mini",), None, budget=0)


def test_local_model_and_baseline_special_cases_live_in_the_config() -> None:
    local = RunConfig(task="t", models=[{"name": "local"}])
    assert (local.reply_format, local.max_tokens) == ("block", 1024)
    chosen = RunConfig(task="t", models=[{"name": "local"}], reply_format="full")
    assert chosen.reply_format == "full"
    baseline = RunConfig(
        task="t", models=[{"name": "m"}], strategy="best-of-n", islands=4, crossover_rate=0.5
    )
    assert (baseline.islands, baseline.crossover_rate, baseline.repair, baseline.novelty_threshold) == (
        1,
        0.0,
        False,
        None,
    )
    assert RunConfig.model_validate(baseline.model_dump()) == baseline  # what resume reads back


def test_run_help_shows_each_default_once() -> None:
    out = CliRunner().invoke(cli, ["run", "--help"], terminal_width=200).output
    assert "--promotion-repeats INTEGER" in out and "(default: 6)" in out
    assert "--novelty-resamples" in out  # once missing from the CLI
