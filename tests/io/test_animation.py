"""Animated images keep every frame: GIF, animated WebP, APNG and multi-page TIFF, through
the library's writers and ``derain`` (timing, loop count, transparency, the run record)."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from clitools import cli, one_error_line
from PIL import Image

from derain.io.animation import Animation
from derain.io.imaging import frame_count, open_frames
from derain.io.writing import encode_image, read_made_by
from derain.record import RunRecord

pytestmark = pytest.mark.usefixtures("no_denormals", "in_tmp")

#: format -> suffix of the four formats that hold frames
FORMATS = {"GIF": "gif", "WEBP": "webp", "PNG": "png", "TIFF": "tiff"}
DURATIONS = [40, 70, 120]


def _frames(alpha: bool = False) -> list[Image.Image]:
    rng = np.random.default_rng(1)
    frames = []
    for _ in range(3):
        pixels = rng.integers(0, 256, (24, 32, 4 if alpha else 3), dtype=np.uint8)
        if alpha:
            pixels[:, :8, 3] = 0  # a transparent band on the left, the rest opaque
            pixels[:, 8:, 3] = 255
        frames.append(Image.fromarray(pixels))
    return frames


def _animated(path: str, fmt: str, alpha: bool = False, loop: int = 3) -> Path:
    frames = _frames(alpha)
    options: dict = {"save_all": True, "append_images": frames[1:]}
    if fmt != "TIFF":
        options |= {"duration": DURATIONS, "loop": loop}
    if fmt == "WEBP" and alpha:
        options["kmax"] = 1  # libwebp drops steady alpha of lossy frames otherwise
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    frames[0].save(path, format=fmt, **options)
    return Path(path)


@pytest.mark.parametrize("fmt", sorted(FORMATS))
def test_the_writers_keep_every_frame_its_timing_and_loop(fmt: str) -> None:
    source = open_frames(_animated(f"a.{FORMATS[fmt]}", fmt))
    assert isinstance(source, Animation) and len(source) == 3
    again = open_frames(encode_image(source, fmt), "again")
    assert isinstance(again, Animation) and len(again) == 3
    if fmt != "TIFF":  # TIFF pages carry no timing
        assert list(again.durations) == DURATIONS
        assert again.loop == 3
    if fmt in ("PNG", "TIFF"):  # lossless: the very pixels
        for a, b in zip(source.frames, again.frames, strict=True):
            assert np.array_equal(np.asarray(a), np.asarray(b))


@pytest.mark.parametrize("fmt", sorted(FORMATS))
def test_cli_derains_every_frame(model_dir: Path, fmt: str) -> None:
    src = _animated(f"in/a.{FORMATS[fmt]}", fmt)
    result = cli(src, "-o", f"out.{FORMATS[fmt]}", "--model", model_dir)
    assert result.exit_code == 0, result.stderr
    assert "warning" not in result.stderr
    out = open_frames(f"out.{FORMATS[fmt]}")
    before = open_frames(src)
    assert isinstance(out, Animation) and isinstance(before, Animation)
    assert len(out) == 3 and out.size == before.size
    if fmt != "TIFF":
        assert list(out.durations) == DURATIONS and out.loop == 3
    # every frame went through the network (a random one changes every frame)
    for a, b in zip(before.frames, out.frames, strict=True):
        assert not np.array_equal(np.asarray(a.convert("RGB")), np.asarray(b.convert("RGB")))
    # frames stay distinct: not one derained frame written three times
    firsts = [np.asarray(f.convert("RGB")) for f in out.frames]
    assert not np.array_equal(firsts[0], firsts[1])


@pytest.mark.parametrize("fmt", ["GIF", "WEBP", "PNG"])
def test_transparency_is_kept(model_dir: Path, fmt: str) -> None:
    src = _animated(f"t.{FORMATS[fmt]}", fmt, alpha=True)
    result = cli(src, "-o", f"t_out.{FORMATS[fmt]}", "--model", model_dir)
    assert result.exit_code == 0, result.stderr
    out = open_frames(f"t_out.{FORMATS[fmt]}")
    assert isinstance(out, Animation)
    for frame in out.frames:
        alpha = np.asarray(frame.convert("RGBA"))[:, :, 3]
        assert (alpha[:, :8] == 0).all() and (alpha[:, 8:] == 255).all()


def test_a_format_of_one_picture_is_refused_with_the_frame_count_and_a_hint(
    model_dir: Path,
) -> None:
    src = _animated("in/anim.gif", "GIF")
    result = cli(src, "-o", "out.jpg", "--model", model_dir)
    assert result.exit_code == 1
    line = one_error_line(result)
    assert "in/anim.gif: animated image of 3 frames" in line
    assert "(JPEG) holds one picture" in line and "-o out.gif" in line
    assert "or -o out.mp4 for a video" in line
    assert not Path("out.jpg").exists()


def test_a_gif_becomes_a_video_and_other_animations_are_told_where_to_go(
    model_dir: Path,
) -> None:
    av = pytest.importorskip("av", reason="videos need PyAV")
    src = _animated("in/anim.gif", "GIF")
    result = cli(src, "-o", "out.mp4", "--model", model_dir)
    assert result.exit_code == 0, result.stderr
    with av.open("out.mp4") as container:
        assert sum(1 for _ in container.decode(video=0)) == 3
    webp = _animated("in/anim.webp", "WEBP")
    refused = cli(webp, "-o", "w.mp4", "--model", model_dir)
    assert refused.exit_code == 2
    assert "w.mp4: only videos and GIFs become videos" in one_error_line(refused)


def test_the_record_names_the_frames_and_a_rerun_skips_the_output(model_dir: Path) -> None:
    src = _animated("in/a.gif", "GIF")
    assert cli(src, "-o", "out.gif", "--model", model_dir).exit_code == 0
    record = RunRecord.parse(read_made_by("out.gif"))
    assert record is not None and record.frames == 3
    again = cli(src, "-o", "out.gif", "--model", model_dir)
    assert again.exit_code == 0 and "skipped" in again.stderr


def test_an_output_holding_one_frame_of_an_animation_is_redone(model_dir: Path) -> None:
    src = _animated("in/a.gif", "GIF")
    assert cli(src, "-o", "out.gif", "--model", model_dir).exit_code == 0
    # what an older derain left: the first frame only, its record naming no frame count
    record = RunRecord.parse(read_made_by("out.gif"))
    assert record is not None
    one = Image.open("out.gif").convert("RGB")
    one.save(
        "out.gif",
        comment=RunRecord(
            record.model, record.weights_sha256, record.precision, record.version, record.input
        ).format(),
    )
    assert frame_count("out.gif") == 1
    result = cli(src, "-o", "out.gif", "--model", model_dir)
    assert result.exit_code == 0, result.stderr
    assert "it holds 1 of the input's 3 frames" in result.stderr
    assert frame_count("out.gif") == 3


def test_the_bomb_guard_counts_every_frame() -> None:
    # 1,000 frames of 4000×3000 in a small file: each frame after the first changes 1 pixel,
    # so the GIF stores 1×1 patches, but a viewer (and a naive reader) makes 12 billion pixels
    canvas = Image.new("P", (4000, 3000), 0)
    dots = [Image.new("P", (4000, 3000), 0) for _ in range(2)]
    dots[0].putpixel((0, 0), 1)
    dots[1].putpixel((0, 0), 2)
    frames = [dots[i % 2] for i in range(999)]
    buf = io.BytesIO()
    canvas.save(buf, format="GIF", save_all=True, append_images=frames, duration=10)
    data = buf.getvalue()
    assert len(data) < 2_000_000 and frame_count(data) == 1000
    Path("bomb.gif").write_bytes(data)
    from derain import ImageError

    with pytest.raises(ImageError, match=r"bomb\.gif: 1000 frames of 4000×3000"):
        open_frames("bomb.gif")
    result = cli("bomb.gif", "-o", "out.gif", "--model", "danet")
    assert result.exit_code == 1
    assert "1000 frames of 4000×3000" in one_error_line(result) and "--max-pixels" in result.stderr
