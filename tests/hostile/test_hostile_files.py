"""Hostile files and folders on the command line: unwritable outputs, a full disk, odd names,
symlink loops, interrupted runs. One bad file never stops a batch, damages a file, leaves a
partial or temp file, or shows a traceback. Bad weights and Hub ids passed as ``--model`` are
refused in one line.

Tests run as root, so ``chmod`` cannot make a folder unwritable: an output path below a regular
*file*, or a patched ``os.replace`` raising PermissionError, stands in for it. A full disk is a
patched encoder (or ``os.fsync``) raising ENOSPC after writing half an image. Already in
test_cli: output equal to the input (literal path and ``-o`` = input folder), Ctrl-C during a
write in-process; in test_io_files: the symlink loop in ``iter_images`` itself.
"""

from __future__ import annotations

import errno
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest
import torch
from clitools import cli, interruptible, make_image, one_error_line
from huggingface_hub import constants
from PIL import Image
from safetensors import safe_open
from safetensors.torch import save_file

from derain.io import write_image_atomic
from derain.io.imaging import open_image

SCRIPT = "import sys; from derain.cli import main; sys.argv[0] = 'derain'; main()"


pytestmark = pytest.mark.usefixtures("no_denormals", "in_tmp")


def errors(result) -> list[str]:
    assert "Traceback" not in result.stderr
    return [line for line in result.stderr.splitlines() if line.startswith("derain: error: ")]


def leftovers(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.name.endswith(".tmp")]


def snapshot(root: Path) -> dict[Path, bytes]:
    return {p: p.read_bytes() for p in root.rglob("*") if p.is_file()}


def _folder(n: int = 3, root: str = "in") -> dict[Path, bytes]:
    for i in range(n):
        make_image(f"{root}/{i}.png", seed=i)
    return snapshot(Path(root))


# --- unwritable outputs ----------------------------------------------------------------------


def test_output_folder_below_a_regular_file(model_dir: Path) -> None:
    inputs = _folder()
    Path("blocker").write_text("x")
    result = cli("in", "-o", "blocker/out", "--model", model_dir)
    assert result.exit_code == 1
    # Checked once: one line stops the batch, not one identical line per file.
    assert errors(result) == [
        "derain: error: blocker/out/0.png: cannot write (Not a directory: blocker); "
        "stopped: no output can be written below blocker"
    ]
    assert snapshot(Path("in")) == inputs and Path("blocker").read_text() == "x"


def test_read_only_output_folder_stops_the_batch_with_one_line(
    model_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Root writes anywhere, so a patched os.access says what a read-only folder would."""
    inputs = _folder()
    Path("out").mkdir()
    real_access = os.access
    monkeypatch.setattr(
        os, "access", lambda p, mode: Path(p).name != "out" and real_access(p, mode)
    )
    result = cli("in", "-o", "out", "--model", model_dir)
    assert result.exit_code == 1
    lines = errors(result)
    assert len(lines) == 1 and "Permission denied: out" in lines[0], result.stderr
    assert "stopped" in lines[0] and list(Path("out").iterdir()) == []
    assert snapshot(Path("in")) == inputs


def test_permission_denied_on_one_output_does_not_stop_the_batch(
    model_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    inputs = _folder()
    real_replace = os.replace

    def replace(src: str | Path, dst: str | Path) -> None:
        if Path(dst).name == "1.png":
            raise PermissionError(errno.EACCES, "Permission denied", str(dst))
        real_replace(src, dst)

    monkeypatch.setattr(os, "replace", replace)
    result = cli("in", "-o", "out", "--model", model_dir)
    assert result.exit_code == 1
    assert errors(result) == [
        "derain: error: in/1.png: out/1.png: cannot write (Permission denied)"
    ]
    assert "done 2, skipped 0, failed 1" in result.stderr
    assert sorted(p.name for p in Path("out").iterdir()) == ["0.png", "2.png"]
    assert leftovers(tmp_path) == [] and snapshot(Path("in")) == inputs


# --- output equal to the input ---------------------------------------------------------------


@pytest.mark.parametrize("alias", ["symlink", "hardlink", "dot-folder", "spelled ./"])
def test_output_that_is_the_input_under_another_name(model_dir: Path, alias: str) -> None:
    src = make_image("a.png")
    before = src.read_bytes()
    output = {
        "symlink": "link.png",
        "hardlink": "hard.png",
        "dot-folder": ".",
        "spelled ./": "./a.png",
    }
    if alias == "symlink":
        Path("link.png").symlink_to("a.png")
    elif alias == "hardlink":
        os.link("a.png", "hard.png")
    result = cli("a.png", "-o", output[alias], "--model", model_dir, "--overwrite")
    assert result.exit_code == 2
    assert "output would overwrite the input" in errors(result)[0]
    assert src.read_bytes() == before


def test_plain_files_listed_into_their_own_folder_are_refused_before_any_work(
    model_dir: Path,
) -> None:
    inputs = _folder(2)
    result = cli("in/0.png", "in/1.png", "-o", "in", "--model", model_dir, "--overwrite")
    assert result.exit_code == 2 and len(errors(result)) == 1
    assert snapshot(Path("in")) == inputs


# --- full disk -------------------------------------------------------------------------------


def _half_then_enospc(image: Image.Image, out, *args: object) -> None:
    out.write(b"\x89PNG half an image")
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


def test_full_disk_mid_write_keeps_the_old_output(
    model_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    src = make_image("a.png")
    assert cli("a.png", "--model", model_dir).exit_code == 0
    before = snapshot(tmp_path)
    monkeypatch.setattr("derain.io.writing._save", _half_then_enospc)
    result = cli("a.png", "--model", model_dir, "--overwrite")
    assert result.exit_code == 1
    assert errors(result) == [
        "derain: error: a.png: a_derained.png: cannot write (No space left on device)"
    ]
    assert snapshot(tmp_path) == before  # input and earlier output intact, no temp file
    assert open_image(src).size == (32, 24)


def test_full_disk_at_fsync_in_a_batch(
    model_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    inputs = _folder(4)
    real_fsync, calls = os.fsync, []

    def fsync(fd: int) -> None:
        calls.append(fd)
        if len(calls) >= 2:  # the disk fills up after the first image
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    result = cli("in", "-o", "out", "--model", model_dir)
    assert result.exit_code == 1
    lines = errors(result)
    assert len(lines) == 3 and all("No space left on device" in line for line in lines)
    assert "done 1, skipped 0, failed 3" in result.stderr
    assert [p.name for p in Path("out").iterdir()] == ["0.png"]
    assert open_image("out/0.png").size == (32, 24)
    assert leftovers(tmp_path) == [] and snapshot(Path("in")) == inputs
    monkeypatch.setattr(os, "fsync", real_fsync)  # space again: the rerun finishes the job
    result = cli("in", "-o", "out", "--model", model_dir)
    assert result.exit_code == 0 and "done 3, skipped 1, failed 0" in result.stderr


# --- names -----------------------------------------------------------------------------------

ODD = ["rainy day ☔ é.jpg", "Ordner ü/straße 1.png", "日本語/雨.png", "  leading space.png"]


def test_spaces_and_non_ascii_names(model_dir: Path) -> None:
    for i, name in enumerate(ODD):
        make_image(Path("in") / name, seed=i)
    undecodable = Path(os.fsdecode(b"in/bad\xffname.png"))  # not UTF-8: surrogate-escaped
    make_image(undecodable)
    Path("in/kaputt ☂.png").write_bytes(b"\x89PNG kaputt")
    result = cli("in", "-r", "-o", "out ☂", "--model", model_dir)
    assert result.exit_code == 1
    assert errors(result) == ["derain: error: in/kaputt ☂.png: not an image file Pillow can read"]
    for name in [*ODD, undecodable.name]:
        assert open_image(Path("out ☂") / name).size == (32, 24), name
    single = cli(Path("in") / ODD[0], "--model", model_dir)  # written beside, named after it
    assert single.exit_code == 0 and Path("in/rainy day ☔ é_derained.jpg").is_file()


@pytest.mark.slow
def test_non_ascii_names_on_an_ascii_terminal(model_dir: Path) -> None:
    make_image("in/雨 ☔.png")
    Path("in/kaputt ☂.png").write_bytes(b"junk")
    env = {**os.environ, "PYTHONIOENCODING": "ascii", "LC_ALL": "C"}
    proc = subprocess.run(
        [sys.executable, "-c", SCRIPT, "in", "-o", "out", "--model", model_dir],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    lines = proc.stderr.splitlines()  # stderr is a pipe: a line per file, then the counts
    assert len(lines) == 3 and lines[0].startswith("derain: error: in/kaputt ")
    assert lines[1].startswith("wrote out/") and lines[2] == "done 1, skipped 0, failed 1"
    assert open_image("out/雨 ☔.png").size == (32, 24)


# --- symlinks --------------------------------------------------------------------------------


def test_symlink_loops_in_a_recursive_walk(model_dir: Path, tmp_path: Path) -> None:
    make_image("in/a.png")
    make_image("in/sub/b.png", seed=1)
    Path("in/sub/up").symlink_to("..", target_is_directory=True)  # in/sub/up/sub/up/...
    Path("in/sub/self").symlink_to("self")  # a link to itself
    Path("in/self.png").symlink_to("self.png")
    Path("in/gone.png").symlink_to("missing.png")  # dangling
    Path("in/a-twin").symlink_to(tmp_path / "in", target_is_directory=True)
    result = cli("in", "-r", "-o", "out", "--model", model_dir)
    assert result.exit_code == 0, result.stderr
    assert "done 2, skipped 0, failed 0" in result.stderr
    found = sorted(p.relative_to("out").as_posix() for p in Path("out").rglob("*.png"))
    assert found == ["a.png", "sub/b.png"]


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs on this platform")
def test_a_fifo_or_socket_is_named_for_what_it_is(model_dir: Path) -> None:
    """Round four: a FIFO named x.png was refused with 'no such file or folder'."""
    import socket

    os.mkfifo("x.png")
    result = cli("x.png", "-o", "out.png", "--model", model_dir)
    assert result.exit_code == 1
    assert (
        result.stderr.strip() == "derain: error: x.png: is a named pipe (FIFO), not a regular file"
    )
    # In a folder: said once, the rest still done.
    make_image("in/a.png")
    os.mkfifo("in/p.png")
    with socket.socket(socket.AF_UNIX) as sock:
        sock.bind("in/s.png")
        result = cli("in", "-o", "out", "--model", model_dir)
    lines = result.stderr.splitlines()
    assert result.exit_code == 1, result.stderr
    assert "derain: error: in/p.png: is a named pipe (FIFO), not a regular file; skipped" in lines
    assert "derain: error: in/s.png: is a socket, not a regular file; skipped" in lines
    assert "done 1, skipped 0, failed 2" in lines and Path("out/a.png").is_file()


def test_names_with_a_newline_or_undecodable_bytes_stay_one_line_each(model_dir: Path) -> None:
    """Round four: a name holding a newline printed its 'wrote' line across two lines."""
    make_image("in/a\nb.png")
    make_image(os.fsdecode(b"in/bad\xff.png"), seed=1)
    make_image("in/c.png", seed=2)
    result = cli("in", "-o", "out", "--model", model_dir)
    assert result.exit_code == 0, result.stderr
    lines = result.stderr.splitlines()
    assert lines == [
        "wrote out/a\\nb.png",
        "wrote out/bad\\xff.png",
        "wrote out/c.png",
        "done 3, skipped 0, failed 0",
    ]
    assert Path("out/a\nb.png").is_file() and Path(os.fsdecode(b"out/bad\xff.png")).is_file()


def test_an_unreadable_file_whose_name_holds_a_newline_gets_its_whole_reason(
    model_dir: Path,
) -> None:
    """Round four, own hunt: the error cut the message at the newline of the name, so the
    line said ``in/bad\\nname.png: in/bad`` and never why."""
    Path("in").mkdir()
    Path("in/bad\nname.png").write_bytes(b"not an image")
    make_image("in/good.png")
    result = cli("in", "-o", "out", "--model", model_dir)
    assert result.exit_code == 1
    errors = [line for line in result.stderr.splitlines() if line.startswith("derain: error:")]
    assert errors == [
        "derain: error: in/bad\\nname.png: not an image file Pillow can read",
    ], result.stderr
    single = cli("in/bad\nname.png", "-o", "x.png", "--model", model_dir)
    assert single.exit_code == 1
    assert single.stderr.strip() == errors[0]


def test_an_output_whose_name_holds_a_newline_gets_its_whole_reason(model_dir: Path) -> None:
    """Session 19: an output that is not there yet cannot be found on disk, so the name was
    cut at its newline and the line said only ``derain: error: x``."""
    make_image("in.png")
    result = cli("in.png", "-o", "x\ny.bmpx", "--model", model_dir)
    assert result.exit_code == 2
    assert result.stderr.strip() == (
        "derain: error: x\\ny.bmpx: cannot write the .bmpx format; use .png, .jpg, .webp or .tif"
    )
    assert not Path("x\ny.bmpx").exists()


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A real 300 KiB file system (tmpfs); needs the right to mount (root on Linux)."""
    folder = tmp_path / "small"
    folder.mkdir()
    made = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=300k", "tmpfs", str(folder)],
        capture_output=True, check=False,
    )  # fmt: skip
    if made.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here ({made.stderr.decode().strip()})")
    try:
        yield folder
    finally:
        subprocess.run(["umount", str(folder)], check=False)


def test_a_disk_that_fills_mid_batch_and_mid_video(model_dir: Path, small_disk: Path) -> None:
    """Own hunt, round four, on a real full file system: the images that fit are written, the
    rest get one line each; a video names its output, never its hidden temp file."""
    rng = np.random.default_rng(0)
    Path("in").mkdir()
    for i in range(5):  # ~95 KiB each as PNG: three fit in 300 KiB
        Image.fromarray(rng.integers(0, 256, (160, 200, 3), dtype=np.uint8)).save(f"in/{i}.png")
    result = cli("in", "-o", small_disk / "out", "--model", model_dir)
    assert result.exit_code == 1
    errors = [line for line in result.stderr.splitlines() if line.startswith("derain: error:")]
    assert errors and all("No space left on device" in line for line in errors), result.stderr
    written = sorted(p.name for p in (small_disk / "out").iterdir())
    assert len(written) + len(errors) == 5 and not [n for n in written if n.startswith(".")]
    for name in written:
        open_image(small_disk / "out" / name)  # complete images only
    pytest.importorskip("av", reason="the video half needs PyAV")
    for name in written:
        (small_disk / "out" / name).unlink()
    _noise_video("clip.mp4")
    video = cli("clip.mp4", "-o", small_disk / "clean.mp4", "--model", model_dir)
    assert video.exit_code == 1
    line = one_error_line(video)
    assert f"{small_disk / 'clean.mp4'}: No space left on device" in line
    assert ".tmp" not in line and list(small_disk.iterdir()) == [small_disk / "out"]


def test_a_read_only_input_folder_with_save_rain_says_read_only(model_dir: Path) -> None:
    """Own hunt, round four: outputs beside inputs on a read-only file system were refused
    as ``Permission denied``; the reason is the read-only file system."""
    make_image("src/a.png")
    Path("ro").mkdir()
    bound = subprocess.run(["mount", "--bind", "src", "ro"], capture_output=True, check=False)
    if bound.returncode != 0:
        pytest.skip(f"cannot bind-mount here ({bound.stderr.decode().strip()})")
    try:
        remount = ["mount", "-o", "remount,ro,bind", "ro"]
        assert subprocess.run(remount, capture_output=True, check=False).returncode == 0
        result = cli("ro", "--save-rain", "--model", model_dir)
        assert result.exit_code == 1
        line = one_error_line(result)
        assert "ro/a_derained.png: cannot write (Read-only file system: ro)" in line
        elsewhere = cli("ro", "-o", "out", "--save-rain", "--model", model_dir)
        assert elsewhere.exit_code == 0, elsewhere.stderr
        assert sorted(p.name for p in Path("out").iterdir()) == [
            "a.png",
            "a_mask.png",
            "a_rain.png",
        ]
    finally:
        subprocess.run(["umount", "ro"], check=False)


def _noise_video(path: str) -> None:
    import av

    rng = np.random.default_rng(1)
    with av.open(path, "w") as container:
        stream = container.add_stream("libx264", rate=10)
        stream.width, stream.height, stream.pix_fmt = 160, 120, "yuv420p"
        for _ in range(40):
            pixels = rng.integers(0, 256, (120, 160, 3), dtype=np.uint8)
            for packet in stream.encode(av.VideoFrame.from_ndarray(pixels, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


# --- weights through --model ----------------------------------------------------------------
# The loaders' checks are in test_weights and test_hub; here: what the command line shows.


def _edit_tensors(path: Path, edit: str) -> None:
    with safe_open(str(path), framework="pt") as f:
        metadata = f.metadata()
        tensors = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118 (not a dict)
    first = sorted(tensors)[0]
    if edit == "missing":
        del tensors[first]
    elif edit == "extra":
        tensors["extra.weight"] = torch.zeros(2)
    else:
        tensors[first] = torch.zeros(3, 1)
    save_file(tensors, str(path), metadata=metadata)


def _break(model: Path, case: str) -> Path:
    """Damage a copy of the saved model; returns what to pass to --model."""
    weights = model / "model.safetensors"
    data = weights.read_bytes()
    if case == "truncated":
        weights.write_bytes(data[: len(data) // 2])
    elif case == "flipped byte":
        weights.write_bytes(data[:-5] + bytes([data[-5] ^ 1]) + data[-4:])
    elif case == "pickle":
        torch.save({"a": torch.zeros(2)}, weights)
        (model / "config.json").unlink()
    elif case == "unknown architecture":
        config = json.loads((model / "config.json").read_text())
        (model / "config.json").write_text(json.dumps({**config, "architecture": "unet"}))
    else:  # tensors that do not fit: a lone file, checked structurally
        (model / "config.json").unlink()
        _edit_tensors(weights, case)
        return weights
    return model


WEIGHT_CASES = {
    "truncated": "sha256 does not match",
    "flipped byte": "sha256 does not match",
    "pickle": "not a valid safetensors file",
    "unknown architecture": "architecture 'unet' is not 'danet'",
    "missing": "1 missing",
    "extra": "1 unexpected (first: extra.weight)",
    "mis-shaped": "has shape (3, 1)",
}


@pytest.mark.parametrize("case", sorted(WEIGHT_CASES))
def test_bad_weights_on_the_command_line(model_dir: Path, case: str) -> None:
    _folder(2)
    target = _break(Path(shutil.copytree(model_dir, "model")), case)
    result = cli("in", "-o", "out", "--model", f"./{target}")  # a bare word is a model name
    assert result.exit_code == 1
    # The model is loaded once, before the first image: one line, not one per file.
    assert errors(result) == [errors(result)[0]] and result.stderr.count("\n") == 1
    assert str(target) in errors(result)[0] and WEIGHT_CASES[case] in errors(result)[0]
    assert not Path("out").exists()


class _NoSuchRepo(BaseHTTPRequestHandler):
    """A Hub that knows no repository: what huggingface.co answers for an unknown id."""

    def do_HEAD(self) -> None:
        self.send_response(401)
        self.send_header("X-Error-Code", "RepoNotFound")
        self.send_header("Content-Length", "0")
        self.end_headers()

    do_GET = do_HEAD

    def log_message(self, *args: object) -> None:
        pass


@pytest.mark.parametrize("situation", ["unknown repository", "offline"])
def test_hub_ids_on_the_command_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, situation: str
) -> None:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _NoSuchRepo)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}"
    monkeypatch.setattr(constants, "ENDPOINT", url)
    monkeypatch.setattr(
        constants, "HUGGINGFACE_CO_URL_TEMPLATE", url + "/{repo_id}/resolve/{revision}/{filename}"
    )
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hf"))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", situation == "offline")
    monkeypatch.setattr(constants, "HF_HUB_DISABLE_IMPLICIT_TOKEN", True)
    make_image("a.png")
    try:
        result = cli("a.png", "--model", "hf-hub:nobody/nothing")
    finally:
        server.shutdown()
        server.server_close()
    assert result.exit_code == 1
    expected = "no such repository" if situation != "offline" else "not in the local cache"
    assert errors(result) == [errors(result)[0]] and expected in errors(result)[0]
    assert errors(result)[0].startswith("derain: error: hf-hub:nobody/nothing: ")


# --- interrupted runs (real processes) -------------------------------------------------------


BIG = (512, 640)  # noise PNGs of this size take ~0.4 s each (model and encoder) on 2 cores


def _start(args: list[str]) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", SCRIPT, *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
        preexec_fn=interruptible,
    )


def _wait_for_first_output(proc: subprocess.Popen[str], out: Path, timeout: float = 240) -> None:
    deadline = time.monotonic() + timeout
    while not any(out.glob("*.png")):
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "no output appeared"
        time.sleep(0.02)


def _all_outputs_valid(out: Path, names: list[str]) -> None:
    assert sorted(p.name for p in out.iterdir()) == sorted(names)  # no temp, no stray file
    for name in names:
        assert open_image(out / name).size == BIG[::-1]


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_a_write_removes_only_temp_files_of_dead_writers() -> None:
    live, dead = os.getppid(), _dead_pid()
    names = [
        f".a.png.{dead}.0badf00d.tmp",
        f".a.png.{live}.0badf00d.tmp",
        f".b.png.{dead}.0badf00d.tmp",
    ]
    Path("out").mkdir()
    for name in names:
        (Path("out") / name).write_bytes(b"half an image")
    write_image_atomic(Image.new("RGB", (4, 4)), "out/a.png")
    assert sorted(p.name for p in Path("out").iterdir()) == sorted([*names[1:], "a.png"])


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGKILL], ids=["SIGINT", "SIGKILL"])
def test_interrupted_folder_run_then_rerun_completes(
    model_dir: Path, tmp_path: Path, sig: signal.Signals
) -> None:
    names = [f"{i}.png" for i in range(6)]
    for i, name in enumerate(names):
        make_image(Path("in") / name, *BIG, seed=i)
    inputs = snapshot(Path("in"))
    args = ["in", "-o", "out", "--model", model_dir, "--tile", "none"]
    proc = _start(args)
    _wait_for_first_output(proc, Path("out"))
    time.sleep(random.Random(int(sig)).uniform(0, 0.15))  # somewhere in the second image
    proc.send_signal(sig)
    _, stderr = proc.communicate(timeout=120)
    if sig == signal.SIGINT:
        assert proc.returncode == 130, stderr
        assert stderr.strip().splitlines()[-1].startswith("derain: error: interrupted; done ")
        assert "Traceback" not in stderr and leftovers(tmp_path) == []
    else:
        assert proc.returncode == -signal.SIGKILL
        # What a kill in the middle of a write leaves behind, to be cleaned up by the rerun.
        Path(f"out/.5.png.{_dead_pid()}.0badf00d.tmp").write_bytes(b"half an image")
    done = [p for p in Path("out").iterdir() if not p.name.endswith(".tmp")]
    assert 1 <= len(done) < 6
    for path in done:  # whatever exists is complete
        assert open_image(path).size == BIG[::-1]
    rerun = subprocess.run(
        [sys.executable, "-c", SCRIPT, *args], capture_output=True, text=True, timeout=300
    )
    assert rerun.returncode == 0, rerun.stderr
    assert f"skipped {len(done)}, failed 0" in rerun.stderr
    _all_outputs_valid(Path("out"), names)
    assert leftovers(tmp_path) == [] and snapshot(Path("in")) == inputs
