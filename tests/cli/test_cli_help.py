"""Help, flags, version, shell completion and how names print."""

from __future__ import annotations

import os

import pytest
from clitools import cli, make_image, one_error_line
from typer.testing import CliRunner

from derain.cli import app, with_default_verb

pytestmark = pytest.mark.usefixtures("no_denormals", "in_tmp")


# --- 21: help and flags ---------------------------------------------------------------------


def help_text(*args: str, width: int = 80) -> str:
    result = CliRunner().invoke(
        app, [*args, "--help"], terminal_width=width, env={"COLUMNS": str(width)}
    )
    assert result.exit_code == 0, result.output
    return result.stdout


def test_flags_show_no_type_and_usage_reads_image_dots() -> None:
    text = help_text("run")
    assert "<bool>" not in text
    assert "Usage: derain run [OPTIONS] IMAGE...\n" in text and "{" not in text
    assert "-r, --recursive " in text


def test_run_help_paragraphs_are_rewrapped_not_broken() -> None:
    text = help_text("run", width=60).split("Arguments")[0]
    paragraphs: list[list[str]] = [[]]
    for line in text.splitlines():
        stripped = line.strip()
        if stripped:
            paragraphs[-1].append(stripped)
        elif paragraphs[-1]:
            paragraphs.append([])
    description = [p for p in paragraphs if p and not p[0].startswith("Usage:")]
    assert len(description) >= 2
    for lines in description:
        # A hard line break in the help source shows as a short line mid-paragraph.
        assert all(len(line) > 40 for line in lines[:-1]), lines


def test_eval_help_names_its_option_not_dir() -> None:
    text = help_text("eval")
    assert "DIR" not in text and "--data" in text


def test_rain_preview_count_has_a_long_name() -> None:
    assert "-n, --pairs" in help_text("rain-preview")


@pytest.mark.parametrize("flag", ["-V", "--version"])
def test_version_flag(flag: str) -> None:
    from derain import __version__

    result = CliRunner().invoke(app, with_default_verb([flag]))
    assert result.exit_code == 0 and result.stdout.strip() == f"derain {__version__}"


def test_shell_completion_completes_verbs_and_options() -> None:
    import subprocess
    import sys

    def complete(words: str) -> list[str]:
        env = {
            **os.environ,
            "_DERAIN_COMPLETE": "complete_bash",
            "COMP_WORDS": words,
            "COMP_CWORD": str(len(words.split()) - 1),
        }
        script = "from derain.cli import main; main()"
        proc = subprocess.run(
            [sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=120
        )
        return proc.stdout.split()

    assert "eval" in complete("derain ev")
    assert "--overwrite" in complete("derain run --over")
    assert "--install-completion" in help_text()


def test_messages_print_names_as_typed_not_as_emoji() -> None:
    make_image("a.png")
    result = cli("a.png", "--model", "hf-hub:x")
    assert result.exit_code == 1
    assert "hf-hub:x: expected" in one_error_line(result)
