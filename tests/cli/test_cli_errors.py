"""The command line's answers to typos, pipes and bad option values (issue 28)."""

from __future__ import annotations

from pathlib import Path

import pytest
import typer
from clitools import cli, make_image, one_error_line

from derain.cli import main
from derain.cli.common import Reporter, fatal_errors


@pytest.mark.parametrize(("typo", "verb"), [("evall", "eval"), ("modles", "models")])
def test_a_typo_of_a_verb_suggests_it(
    typo: str, verb: str, in_tmp: None, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_:
        main([typo])
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert f"did you mean 'derain {verb}'?" in err and "no such file" not in err


def test_a_file_named_like_a_typo_is_still_an_input(
    in_tmp: None, model_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    make_image("evall.png").rename("evall")  # a PNG named like a typo of eval
    with pytest.raises(SystemExit) as exit_:
        main(["evall", "-o", "out.png", "-m", str(model_dir), "--device", "cpu"])
    assert exit_.value.code == 0, capsys.readouterr().err
    assert Path("out.png").is_file()


def test_piped_video_says_it_is_not_supported(in_tmp: None, model_dir: Path) -> None:
    result = cli("-", "-o", "x.mp4", "--model", model_dir, stdin=b"\0\0\0\x20ftypisom" * 8)
    assert result.exit_code == 2
    assert "piped video is not supported" in one_error_line(result)
    assert not Path("x.mp4").exists()


@pytest.mark.parametrize(
    ("option", "code"),
    [
        (["--tile", "abc"], 2),  # malformed values: usage errors
        (["--precision", "fp64"], 2),
        (["--device", "foo"], 2),
        (["--device", "cuda:x"], 2),
        (["--model", "no-such-model"], 1),  # well formed, but not found here
    ],
)
def test_exit_code_rule(in_tmp: None, model_dir: Path, option: list[str], code: int) -> None:
    """2: an option's value is malformed; 1: a well-formed one cannot be had here."""
    make_image("a.png")
    args = ["a.png", "-o", "b.png", "--model", str(model_dir), *option]
    result = cli(*args)
    assert result.exit_code == code, result.stderr
    one_error_line(result)
    assert not Path("b.png").exists()


def _import_cut_by_ctrl_c() -> None:
    try:
        raise KeyboardInterrupt
    except KeyboardInterrupt as exc:  # what pybind11 does when Ctrl-C cuts a module's init
        raise ImportError("initialization failed") from exc


@pytest.mark.parametrize(
    ("fail", "code", "line"),
    [
        (_import_cut_by_ctrl_c, 130, "derain: error: interrupted"),
        (lambda: __import__("no_such_module_here"), 1, "No module named 'no_such_module_here'"),
    ],
)
def test_ctrl_c_that_cuts_an_import_short_is_an_interrupt(
    fail, code: int, line: str, capsys: pytest.CaptureFixture[str]
) -> None:
    # Ctrl-C while a lazily imported C extension initialises (CI, 2026-12-04: the training
    # run's first curves plot) must read as Ctrl-C, not as an "unexpected ImportError".
    with pytest.raises(typer.Exit) as exit_, fatal_errors(Reporter()):
        fail()
    assert exit_.value.exit_code == code
    err = capsys.readouterr().err.strip()
    assert line in err and len(err.splitlines()) == 1
