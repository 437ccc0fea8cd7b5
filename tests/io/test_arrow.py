"""Ray jobs on pyarrow file systems, without Ray: planning, reading, writing and the actor.

The actor class Ray runs (:class:`derain.ray_batch._DerainActor`) is called here in this
process, so a file system that lives in this process (fsspec's in-memory one, wrapped in
:class:`pyarrow.fs.PyFileSystem`) can stand for a remote store; ``tests/test_ray.py`` runs
``file://`` URIs through a real Ray.
"""

from __future__ import annotations

import io
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from derain.batch import plan_file_system_jobs
from derain.cli import app
from derain.cli.common import UsageProblem
from derain.errors import DerainError, ImageError

pafs = pytest.importorskip("pyarrow.fs")
fsspec = pytest.importorskip("fsspec")
pytest.importorskip("ray")  # derain.ray_batch's actor runs here without starting Ray

from derain.io.arrow import ArrowFiles, is_uri, list_images  # noqa: E402
from derain.ray_batch import ROW_COLUMNS, RayReport, RaySettings, _DerainActor, _Lines, _rows  # noqa: E402

COMMON = ["--tile", "64", "--device", "cpu", "--precision", "fp32"]


def _png(rgb: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, format="PNG")
    return buf.getvalue()


@pytest.fixture
def memory() -> Iterator[tuple[Any, str]]:
    """fsspec's in-memory file system as a pyarrow one, and a fresh folder in it."""
    fs = fsspec.filesystem("memory")
    root = f"/t{uuid.uuid4().hex}"
    yield pafs.PyFileSystem(pafs.FSSpecHandler(fs)), root
    fs.rm(root, recursive=True)


@pytest.fixture
def one_thread() -> Iterator[None]:
    """The actor sets torch's thread count, as it does in a Ray worker; restored after."""
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


def _put(fs: Any, path: str, data: bytes) -> None:
    with fs.open_output_stream(path) as out:
        out.write(data)


def _get(fs: Any, path: str) -> bytes:
    with fs.open_input_stream(path) as stream:
        return bytes(stream.read())


def _run(inputs: list[str], output: str, model: Path, **fs: Any) -> tuple[RayReport, list[Any]]:
    """What :func:`derain.ray_batch.derain_with_ray` does, with the actor called here."""
    from derain.batch import BatchCounts, select_jobs
    from derain.ray_batch import _runner

    settings = RaySettings(model=str(model), device="cpu", tile="64", precision="fp32")
    plan, in_files, out_files = plan_file_system_jobs(
        inputs, output, True, False, fs.get("input_filesystem"), fs.get("output_filesystem")
    )
    report = RayReport()
    lines = _Lines(report, None)
    for line in plan.errors:
        lines.failed(line)
    counts = BatchCounts()
    todo = select_jobs(plan.jobs, _runner(settings, in_files, out_files, lines), False, counts)
    report.skipped = counts.skipped
    if todo:
        actor = _DerainActor(settings, in_files, out_files)
        rows = _rows(todo)
        batch = {c: np.array([row[c] for row in rows]) for c in ROW_COLUMNS}
        for error in actor(batch)["error"]:
            if error:
                lines.failed(error)
            else:
                report.done += 1
    return report, todo


def test_memory_file_system_job_matches_local_run(
    tmp_path: Path, model_dir: Path, memory: tuple[Any, str], one_thread: None
) -> None:
    """A job from and to a non-local pyarrow file system: the local run's pixels, the local
    run's rules (hidden and non-image files left out, a bad file reported and skipped, the
    output tree mirrors the input tree), and a rerun does nothing."""
    fs, root = memory
    rng = np.random.default_rng(0)
    local = tmp_path / "in"
    (local / "sub").mkdir(parents=True)
    for name in ("a.png", "sub/b.png"):
        data = _png(rng.integers(0, 256, (24, 40, 3), dtype=np.uint8))
        (local / name).write_bytes(data)
        _put(fs, f"{root}/in/{name}", data)
    _put(fs, f"{root}/in/broken.png", b"not a png")
    _put(fs, f"{root}/in/.hidden.png", b"not read")
    _put(fs, f"{root}/in/notes.txt", b"not an image")
    _put(fs, f"{root}/in/a_derained.png", b"an earlier run's output beside its input")

    report, _ = _run(
        [f"{root}/in"], f"{root}/out", model_dir, input_filesystem=fs, output_filesystem=fs
    )
    assert report.done == 2
    assert report.errors == [f"{root}/in/broken.png: not an image file Pillow can read"]

    result = CliRunner().invoke(
        app, ["run", str(local), "-o", str(tmp_path / "out"), "-r", "-m", str(model_dir), *COMMON]
    )
    assert result.exit_code == 0, result.output
    for name in ("a.png", "sub/b.png"):
        ours = np.asarray(Image.open(io.BytesIO(_get(fs, f"{root}/out/{name}"))), dtype=int)
        theirs = np.asarray(Image.open(tmp_path / "out" / name), dtype=int)
        assert np.abs(ours - theirs).max() <= 1
    files = ArrowFiles(fs)
    assert (files.read_made_by(Path(f"{root}/out/a.png")) or "").startswith("derain ")

    again, todo = _run(
        [f"{root}/in"], f"{root}/out", model_dir, input_filesystem=fs, output_filesystem=fs
    )
    # Only the file that failed is tried again.
    assert (again.done, again.skipped, [job.target.name for job in todo]) == (0, 2, ["broken.png"])


def test_outputs_made_by_another_model_are_redone(
    tmp_path: Path, model_dir: Path, memory: tuple[Any, str], one_thread: None
) -> None:
    """An output on the store that another model made is redone, with a note."""
    fs, root = memory
    _put(fs, f"{root}/in/a.png", _png(np.full((16, 16, 3), 90, np.uint8)))
    other = Image.new("RGB", (16, 16))
    exif = Image.Exif()
    exif[0x0131] = "derain sha256:0000 (another model)"
    buf = io.BytesIO()
    other.save(buf, format="PNG", exif=exif.tobytes())
    _put(fs, f"{root}/out/a.png", buf.getvalue())
    report, todo = _run(
        [f"{root}/in"], f"{root}/out", model_dir, input_filesystem=fs, output_filesystem=fs
    )
    assert (report.done, report.skipped, len(todo)) == (1, 0, 1)
    assert any("made by another model" in note for note in report.notes)


class _CountingHandler(pafs.FSSpecHandler):
    """fsspec's handler that counts the bytes read from every file it opens, for streaming
    and for random access alike."""

    def __init__(self, fs: Any) -> None:
        super().__init__(fs)
        self.bytes_read = 0

    def open_input_stream(self, path: str) -> Any:
        return self.open_input_file(path)

    def open_input_file(self, path: str) -> Any:
        import pyarrow

        if not self.fs.isfile(path):
            raise FileNotFoundError(path)
        handler, inner = self, self.fs.open(path, mode="rb")

        class Counted(io.RawIOBase):
            def readable(self) -> bool:
                return True

            def seekable(self) -> bool:
                return True

            def seek(self, offset: int, whence: int = 0) -> int:
                return int(inner.seek(offset, whence))

            def tell(self) -> int:
                return int(inner.tell())

            def read(self, size: int | None = -1) -> bytes:
                data = bytes(inner.read(-1 if size is None else size))
                handler.bytes_read += len(data)
                return data

        return pyarrow.PythonFile(Counted(), mode="r")


def test_frame_count_on_a_store_reads_the_headers_not_the_whole_file(
    memory: tuple[Any, str],
) -> None:
    """A rerun asks every PNG on the store how many frames it holds: only its headers travel."""
    _, root = memory
    handler = _CountingHandler(fsspec.filesystem("memory"))
    fs = pafs.PyFileSystem(handler)
    rng = np.random.default_rng(0)
    frames = [Image.fromarray(rng.integers(0, 256, (256, 256, 3), np.uint8)) for _ in range(3)]
    buf = io.BytesIO()
    frames[0].save(buf, format="PNG", save_all=True, append_images=frames[1:])
    data = buf.getvalue()
    _put(fs, f"{root}/a.png", data)
    _put(fs, f"{root}/broken.png", data[:40])
    files = ArrowFiles(fs)
    assert files.frame_count(Path(f"{root}/a.png")) == 3
    assert handler.bytes_read < len(data) // 10
    assert files.frame_count(Path(f"{root}/broken.png")) == 1
    assert files.frame_count(Path(f"{root}/missing.png")) == 1


def test_local_input_to_store_output(
    tmp_path: Path, model_dir: Path, memory: tuple[Any, str], one_thread: None
) -> None:
    """Local inputs (a glob) and an output folder on another file system."""
    fs, root = memory
    (tmp_path / "in").mkdir()
    Image.new("RGB", (20, 12), (10, 200, 30)).save(tmp_path / "in" / "x.jpg")
    report, _ = _run(
        [str(tmp_path / "in" / "*.jpg")], f"{root}/out", model_dir, output_filesystem=fs
    )
    assert (report.done, report.errors) == (1, [])
    with Image.open(io.BytesIO(_get(fs, f"{root}/out/x.jpg"))) as im:
        assert (im.format, im.size) == ("JPEG", (20, 12))


def test_file_uris_refuse_to_overwrite_inputs(tmp_path: Path) -> None:
    """``file://`` URIs go through pyarrow's local file system; an output folder that is the
    input folder is refused before anything is written, whatever the spelling."""
    (tmp_path / "in").mkdir()
    Image.new("RGB", (8, 8)).save(tmp_path / "in" / "a.png")
    uri = (tmp_path / "in").as_uri()
    assert is_uri(uri) and not is_uri(str(tmp_path))
    with pytest.raises(UsageProblem, match="would overwrite the input"):
        plan_file_system_jobs([uri], str(tmp_path / "in"), False, False)
    with pytest.raises(UsageProblem, match="would overwrite the input"):
        plan_file_system_jobs([str(tmp_path / "in")], uri + "/", False, False)
    plan, in_files, _ = plan_file_system_jobs([uri], (tmp_path / "out").as_uri(), False, False)
    assert [job.target for job in plan.jobs] == [tmp_path / "out" / "a.png"]
    assert isinstance(in_files, ArrowFiles) and in_files.is_local


def test_listing_errors_name_the_uri(tmp_path: Path, memory: tuple[Any, str]) -> None:
    fs, root = memory
    files = ArrowFiles(fs)
    found, errors = list_images(files, [f"{root}/missing"], recursive=True)
    assert (found, errors) == ([], [f"{root}/missing: no such file or folder"])
    _put(fs, f"{root}/empty/notes.txt", b"text")
    _, errors = list_images(files, [f"{root}/empty"], recursive=True)
    assert errors == [f"{root}/empty: no image files in this folder"]
    with pytest.raises(ImageError, match=f"{root}/nope.png: no such file"):
        files.open_frames(Path(f"{root}/nope.png"))
    with pytest.raises(DerainError, match="nosuchscheme://x: cannot open its file system"):
        plan_file_system_jobs(["nosuchscheme://x"], str(tmp_path / "out"), False, False)
    with pytest.raises(UsageProblem, match="all of them as URIs or all as local paths"):
        plan_file_system_jobs(
            [str(tmp_path), (tmp_path / "x").as_uri()], str(tmp_path), False, False
        )


def test_uris_without_ray_are_refused(tmp_path: Path) -> None:
    """A local run does not read URIs as paths: one line that points to --ray."""
    result = CliRunner().invoke(app, ["run", str(tmp_path), "-o", "s3://bucket/out"])
    assert result.exit_code == 2
    assert "s3://bucket/out: file system URIs are read and written with --ray" in result.output
