"""Packaging: the wheel carries the weights folder and the console script."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from places import ROOT

from derain import get_model_info, list_models
from derain.weights import sha256_of, shipped_weights_dir


@pytest.mark.slow
def test_wheel_contains_weights_and_entry_point(tmp_path: Path) -> None:
    pytest.importorskip("hatchling")
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-w",
            str(tmp_path),
            str(ROOT),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    (wheel,) = tmp_path.glob("derain-*.whl")
    with zipfile.ZipFile(wheel) as zf:
        names = set(zf.namelist())
        shipped = {p.name for p in (ROOT / "weights").iterdir() if p.is_file()}
        assert shipped and {f"derain/weights/{n}" for n in shipped} <= names
        entry_points = next(n for n in names if n.endswith("entry_points.txt"))
        assert "derain = derain.cli:main" in zf.read(entry_points).decode()
        assert not any(n.startswith(("tests/", "runs/")) for n in names)


def test_recorded_digests_match_shipped_files() -> None:
    checked = 0
    for name in list_models():
        weights = get_model_info(name).weights
        path = shipped_weights_dir() / weights.filename
        if weights.sha256 is None:
            assert not path.exists(), f"{path} is shipped without a recorded sha256"
            continue
        assert sha256_of(path) == weights.sha256
        checked += 1
    if not checked:
        pytest.skip("no weights shipped yet")


def test_console_script_is_installed() -> None:
    exe = shutil.which("derain") or str(Path(sys.executable).with_name("derain"))
    proc = subprocess.run([exe, "--version"], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0 and proc.stdout.strip()


@pytest.mark.parametrize("flag", ["--help", "--version"])
def test_help_and_version_do_not_import_torch(flag: str) -> None:
    code = (
        "import sys\nfrom derain.cli import main\ntry:\n    main([" + repr(flag) + "])\n"
        "except SystemExit:\n    pass\nprint('torch' in sys.modules)"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip().splitlines()[-1] == "False"


def test_registry_does_not_import_the_weights_loader() -> None:
    code = "import sys, derain.models.registry\nprint('derain.weights' in sys.modules)"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0 and proc.stdout.strip() == "False", proc.stderr


def test_the_version_has_one_source() -> None:
    """pyproject reads the version from derain/_version.py; the installed metadata agrees."""
    import importlib.metadata

    from derain import __version__

    tomllib = pytest.importorskip("tomllib")  # Python 3.11+

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert "version" not in project["project"] and "version" in project["project"]["dynamic"]
    assert importlib.metadata.version("derain") == __version__
