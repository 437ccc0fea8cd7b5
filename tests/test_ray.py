"""Batch deraining on Ray: local Ray with 2 CPUs, a worker killed mid-job, reruns, no leftovers,
``file://`` URIs through pyarrow.

Ray is heavy (each start spawns a GCS, a raylet and worker processes), so only three tests
start it, once each. Every process Ray starts here inherits a unique environment
variable; the tests look for it in ``/proc`` to find workers to kill and to check that none
is left behind.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

import derain
from derain import DANet, DANetConfig
from derain.cli import app, ray_flag_value

ray = pytest.importorskip("ray")

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not Path("/proc/self/environ").exists(), reason="needs Linux /proc"),
]

TOKEN_VAR = "DERAIN_RAY_TEST_TOKEN"
#: Ray takes a while to end its worker processes after a shutdown on a loaded machine.
EXIT_WAIT_S = 120
JOB_WAIT_S = 600


def _tagged(token: str, title: str = "") -> list[int]:
    """Processes whose environment holds ``token`` (and whose command line has ``title``)."""
    found = []
    needle = f"{TOKEN_VAR}={token}".encode()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            if needle not in (entry / "environ").read_bytes().split(b"\0"):
                continue
            if title.encode() in (entry / "cmdline").read_bytes():
                found.append(int(entry.name))
        except OSError:  # gone, or not ours
            continue
    return found


def _wait_none_left(token: str) -> None:
    deadline = time.monotonic() + EXIT_WAIT_S
    while _tagged(token) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert _tagged(token) == [], "Ray processes left behind"


def _images(folder: Path, count: int, size: tuple[int, int]) -> None:
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for i in range(count):
        rgb = rng.integers(0, 256, (*size, 3), dtype=np.uint8)
        Image.fromarray(rgb).save(folder / f"im{i:02d}.png")


@pytest.fixture
def token(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    value = uuid.uuid4().hex
    monkeypatch.setenv(TOKEN_VAR, value)
    yield value
    _wait_none_left(value)


def test_cli_local_ray_matches_local_run(tmp_path: Path, model_dir: Path, token: str) -> None:
    """`derain IN -o OUT --ray` starts a local Ray, and its outputs equal a local run's."""
    _images(tmp_path / "in", 4, (40, 60))
    (tmp_path / "in" / "broken.png").write_bytes(b"not a png")
    common = ["-m", str(model_dir), "--tile", "64", "--device", "cpu", "--precision", "fp32"]
    local = CliRunner().invoke(
        app, ["run", str(tmp_path / "in"), "-o", str(tmp_path / "a"), *common]
    )
    assert local.exit_code == 1  # the broken file
    env = {**os.environ, "RAY_TMPDIR": tempfile.mkdtemp(prefix="dr", dir="/tmp")}
    cmd = [sys.executable, "-m", "derain", str(tmp_path / "in"), "-o", str(tmp_path / "b")]
    try:
        proc = subprocess.run(
            [*cmd, *common, "--ray"], capture_output=True, text=True, env=env, timeout=JOB_WAIT_S
        )
        _wait_none_left(token)
        # The Ray started for the job leaves no session folder (logs, sockets) behind.
        sessions = list(Path(env["RAY_TMPDIR"]).rglob("session_*"))
    finally:
        _wait_none_left(token)
        shutil.rmtree(env["RAY_TMPDIR"], ignore_errors=True)
    assert proc.returncode == 1, proc.stderr
    assert sessions == []
    assert "broken.png: not an image file" in proc.stderr
    assert "done 4, skipped 0, failed 1" in proc.stderr
    for i in range(4):  # a line per file, as `derain run` gives in a log
        assert f"wrote {tmp_path / 'b' / f'im{i:02d}.png'}" in proc.stderr
    assert "deprecated" not in proc.stderr  # Ray Data's warning about map_batches arguments
    for i in range(4):
        a = np.asarray(Image.open(tmp_path / "a" / f"im{i:02d}.png"), dtype=int)
        b = np.asarray(Image.open(tmp_path / "b" / f"im{i:02d}.png"), dtype=int)
        assert np.abs(a - b).max() <= 1  # within 1/255


def test_quiet_means_errors_only_from_ray_too(tmp_path: Path, model_dir: Path, token: str) -> None:
    """`--ray -q` prints the one error and nothing of Ray's own INFO, WARNING or C++ logs."""
    _images(tmp_path / "in", 2, (40, 60))
    (tmp_path / "in" / "broken.png").write_bytes(b"not a png")
    env = {**os.environ, "RAY_TMPDIR": tempfile.mkdtemp(prefix="dr", dir="/tmp")}
    cmd = [sys.executable, "-m", "derain", str(tmp_path / "in"), "-o", str(tmp_path / "out")]
    args = ["-m", str(model_dir), "--tile", "64", "--device", "cpu", "--ray", "-q"]
    try:
        proc = subprocess.run(
            [*cmd, *args], capture_output=True, text=True, env=env, timeout=JOB_WAIT_S
        )
    finally:
        _wait_none_left(token)
        shutil.rmtree(env["RAY_TMPDIR"], ignore_errors=True)
    assert proc.returncode == 1
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "broken.png: not an image file" in lines[0], proc.stderr
    assert proc.stdout == ""


def test_cli_file_uris_on_ray(tmp_path: Path, model_dir: Path, token: str) -> None:
    """`derain file://IN -o file://OUT --ray`: inputs listed and read, outputs written through
    pyarrow's file system, a bad file named in one line; a rerun skips every output (and, with
    nothing to do, does not start Ray)."""
    _images(tmp_path / "in" / "sub", 3, (24, 40))
    (tmp_path / "in" / "broken.png").write_bytes(b"not a png")
    source, target = (tmp_path / "in").as_uri(), (tmp_path / "out").as_uri()
    common = ["-m", str(model_dir), "--tile", "64", "--device", "cpu", "--precision", "fp32"]
    env = {**os.environ, "RAY_TMPDIR": tempfile.mkdtemp(prefix="dr", dir="/tmp")}
    cmd = [sys.executable, "-m", "derain", source, "-o", target, "-r", *common, "--ray"]
    try:
        first = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=JOB_WAIT_S)
    finally:
        _wait_none_left(token)
        shutil.rmtree(env["RAY_TMPDIR"], ignore_errors=True)
    assert first.returncode == 1, first.stderr
    assert f"{tmp_path / 'in' / 'broken.png'}: not an image file" in first.stderr
    assert "done 3, skipped 0, failed 1" in first.stderr
    local = tmp_path / "local"
    result = CliRunner().invoke(
        app, ["run", str(tmp_path / "in" / "sub"), "-o", str(local), *common]
    )
    for i in range(3):
        a = np.asarray(Image.open(local / f"im{i:02d}.png"), dtype=int)
        b = np.asarray(Image.open(tmp_path / "out" / "sub" / f"im{i:02d}.png"), dtype=int)
        assert np.abs(a - b).max() <= 1
    assert not [p for p in (tmp_path / "out").rglob("*") if p.name.startswith(".")]
    (tmp_path / "in" / "broken.png").unlink()
    again = subprocess.run(cmd, capture_output=True, text=True, timeout=JOB_WAIT_S)
    assert again.returncode == 0, again.stderr
    assert "done 0, skipped 3, failed 0" in again.stderr
    assert result.exit_code == 0


def _kill_one_worker_mid_job(token: str, out: Path, total: int, killed: list[int]) -> None:
    deadline = time.monotonic() + JOB_WAIT_S
    while time.monotonic() < deadline:
        written = len(list(out.glob("*.png"))) if out.is_dir() else 0
        workers = _tagged(token, "_DerainActor")
        if written >= 1 and workers:
            if written < total:
                os.kill(workers[0], signal.SIGKILL)
                killed.append(workers[0])
            return
        time.sleep(0.05)


def test_worker_killed_mid_job_and_rerun(tmp_path: Path, token: str) -> None:
    """A worker killed mid-job: the job still ends with every output complete; a rerun
    after losing some outputs does only those."""
    from derain.ray_batch import RaySettings, derain_with_ray

    total = 10
    _images(tmp_path / "in", total, (192, 256))
    torch.manual_seed(0)
    # The full-size architecture (random weights): slow enough per image to kill mid-job.
    derain.save_pretrained(DANet(DANetConfig()), tmp_path / "model")
    out = tmp_path / "out"
    settings = RaySettings(model=str(tmp_path / "model"), device="cpu", tile="none")
    temp = tempfile.mkdtemp(prefix="dr", dir="/tmp")
    ray.init(num_cpus=2, include_dashboard=False, _temp_dir=temp, logging_level="warning")
    try:
        killed: list[int] = []
        killer = threading.Thread(
            target=_kill_one_worker_mid_job, args=(token, out, total, killed), daemon=True
        )
        killer.start()
        report = derain_with_ray(tmp_path / "in", out, settings=settings)
        killer.join(timeout=JOB_WAIT_S)
        assert killed, "the job ended before a worker could be killed"
        assert (report.done, report.failed) == (total, 0), report.errors
        for i in range(total):
            with Image.open(out / f"im{i:02d}.png") as im:
                im.load()  # a truncated file would fail here
                assert im.size == (256, 192)
        assert not [p for p in out.iterdir() if p.suffix == ".tmp"]
        for i in (1, 4, 7):
            (out / f"im{i:02d}.png").unlink()
        again = derain_with_ray(tmp_path / "in", out, settings=settings)
        assert (again.done, again.skipped, again.failed) == (3, total - 3, 0)
    finally:
        ray.shutdown()
        shutil.rmtree(temp, ignore_errors=True)


def test_pool_size_in_the_form_each_ray_wants() -> None:
    """Ray 2.51+ deprecates ``concurrency=`` (a warning line on every job); older Ray
    deprecates ``compute=``. Each gets the form it does not warn about."""
    from types import SimpleNamespace

    from derain.ray_batch import _pool_size

    assert _pool_size(SimpleNamespace(__version__="2.40.0"), 3) == {"concurrency": 3}
    if tuple(int(part) for part in ray.__version__.split(".")[:2]) < (2, 51):
        pytest.skip(f"Ray {ray.__version__} takes concurrency=")
    (key, strategy), *_ = _pool_size(ray, 3).items()
    assert key == "compute" and isinstance(strategy, ray.data.ActorPoolStrategy)
    assert strategy.min_size == strategy.max_size == 3


def test_ctrl_c_on_ray_prints_the_counts(
    tmp_path: Path, model_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Ctrl-C while results come in: the counts so far and what is not done, exit code 130.

    Ray itself is stood in for (no cluster starts): one result arrives, then the interrupt.
    """
    import contextlib
    from types import SimpleNamespace

    from derain import ray_batch

    def results(*_: object, **__: object) -> SimpleNamespace:
        def rows() -> Iterator[dict[str, str]]:
            yield {"source": str(tmp_path / "in" / "im00.png"), "error": ""}
            raise KeyboardInterrupt

        return SimpleNamespace(iter_rows=rows)

    fake = SimpleNamespace(data=SimpleNamespace(from_items=lambda *a, **k: None))
    monkeypatch.setattr(ray_batch, "_import_ray", lambda: fake)
    monkeypatch.setattr(ray_batch, "_connected", lambda *a: contextlib.nullcontext())
    monkeypatch.setattr(ray_batch, "_pool", lambda *a: (2, {}))
    monkeypatch.setattr(ray_batch, "_map", results)
    _images(tmp_path / "in", 3, (24, 32))
    args = ["run", str(tmp_path / "in"), "-o", str(tmp_path / "out"), "-m", str(model_dir)]
    result = CliRunner().invoke(app, ray_flag_value([*args, "--ray"]))
    assert result.exit_code == 130, result.output
    assert f"wrote {tmp_path / 'out' / 'im00.png'}" in result.output
    assert "interrupted; done 1, skipped 0, failed 0, not done 2" in result.output
