"""Video in, video out: clips the tests make themselves with PyAV, a tiny random model."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

from derain import DANet, DANetConfig, Deraining
from derain.io.video import Deflicker, VideoError, derain_frames, derain_video, probe_video

av = pytest.importorskip("av", reason="video tests need PyAV: pip install 'derain[video]'")

TINY = DANetConfig(channels=8, orb_blocks=1, stage_blocks=1)
MS = Fraction(1, 1000)
VFR_PTS = (0, 40, 80, 200, 230, 500)  # ms: 25 fps, then a pause, then 33 fps, then a pause
AUDIO_RATE = 16000


@pytest.fixture(scope="module")
def deraining(no_denormals: None) -> Deraining:
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    return Deraining(DANet(TINY), device="cpu", tile=None, dtype="fp32")


def _frames(width: int, height: int, count: int) -> list[np.ndarray]:
    """A pattern that moves one pixel per frame, with random noise 'rain' on top."""
    rng = np.random.default_rng(0)
    y, x = np.mgrid[0:height, 0:width]
    frames = []
    for i in range(count):
        base = ((x + i) // 8 + y // 8) % 2 * 120 + 60
        rain = (rng.random((height, width)) < 0.02) * 90
        frames.append(np.clip(base + rain, 0, 255).astype(np.uint8)[:, :, None].repeat(3, 2))
    return frames


def make_clip(
    path: Path,
    width: int = 64,
    height: int = 48,
    pts: tuple[int, ...] = (0, 40, 80, 120),
    audio: bool = False,
    rotation: int = 0,
    aspect: Fraction | None = None,
    codec: str = "libx264",
    audio_codec: str = "aac",
    time_base: Fraction = MS,
    options: dict[str, str] | None = None,
) -> Path:
    """A clip with frames at ``pts`` (in ``time_base`` units), optionally audio, rotation, SAR.

    ``options`` go to the muxer (``{"movflags": "faststart"}``: the MP4 index first).
    """
    with av.open(str(path), "w", options=options or {}) as out:
        video = out.add_stream(codec, rate=25, options={"crf": "10"})
        video.width, video.height, video.pix_fmt = width, height, "yuv420p"
        video.time_base = video.codec_context.time_base = time_base
        if aspect is not None:
            video.sample_aspect_ratio = video.codec_context.sample_aspect_ratio = aspect
        if rotation:
            video.set_display_rotation(rotation)
        rate = 48000 if audio_codec == "libopus" else AUDIO_RATE  # Opus takes 48 kHz only
        sound = out.add_stream(audio_codec, rate=rate) if audio else None
        for rgb, t in zip(_frames(width, height, len(pts)), pts, strict=True):
            frame = av.VideoFrame.from_ndarray(rgb, format="rgb24")
            frame.pts, frame.time_base = t, time_base
            out.mux(video.encode(frame))
        out.mux(video.encode(None))
        if sound is not None:
            # As long as the video: its last frame's time plus one frame.
            seconds = float((pts[-1] + pts[-1] // max(1, len(pts) - 1)) * time_base)
            wave = np.sin(np.arange(int(rate * seconds)) * 0.05)[None]
            fmt = sound.codec_context.format
            kind = {"flt": np.float32, "s16": np.int16, "s32": np.int32}[fmt.name.rstrip("p")]
            scale = 1 if kind is np.float32 else np.iinfo(kind).max // 2
            samples = (wave * scale).astype(kind)
            step = sound.codec_context.frame_size or 1024
            for start in range(0, samples.shape[1], step):
                chunk = av.AudioFrame.from_ndarray(
                    np.ascontiguousarray(samples[:, start : start + step]), format=fmt.name,
                    layout="mono",
                )  # fmt: skip
                chunk.sample_rate, chunk.pts = rate, start
                out.mux(sound.encode(chunk))
            out.mux(sound.encode(None))
    return path


def _read(path: Path) -> tuple[list[np.ndarray], list[float], object]:
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        frames, times, rotation = [], [], None
        for frame in container.decode(stream):
            frames.append(frame.to_ndarray(format="rgb24"))
            times.append(round(float(frame.time), 3))
            rotation = frame.rotation
        info = (stream.codec_context.name, stream.codec_context.pix_fmt, stream.sample_aspect_ratio)
    return frames, times, (rotation, *info)


def _audio_packets(path: Path) -> list[bytes]:
    with av.open(str(path)) as container:
        if not container.streams.audio:
            return []
        return [bytes(p) for p in container.demux(container.streams.audio[0]) if p.size]


def test_size_timestamps_and_codec_are_kept(deraining: Deraining, tmp_path: Path) -> None:
    src = make_clip(tmp_path / "in.mp4", 322, 180, VFR_PTS)
    dst = derain_video(deraining, src, tmp_path / "out.mp4")
    frames, times, (rotation, codec, pix_fmt, _sar) = _read(dst)
    assert len(frames) == len(VFR_PTS)
    assert frames[0].shape == (180, 322, 3)
    assert times == [t / 1000 for t in VFR_PTS]  # variable frame rate kept, frame by frame
    assert (codec, pix_fmt, rotation) == ("h264", "yuv420p", 0)
    original = _read(src)[0]
    assert any(not np.array_equal(a, b) for a, b in zip(frames, original, strict=True))


def test_odd_sides_keep_their_size_in_444(deraining: Deraining, tmp_path: Path) -> None:
    src = tmp_path / "odd.mkv"
    with av.open(str(src), "w") as out:  # 4:2:0 cannot hold odd sides: the source is 4:4:4
        video = out.add_stream("libx264", rate=25)
        video.width, video.height, video.pix_fmt = 33, 21, "yuv444p"
        for i, rgb in enumerate(_frames(33, 21, 2)):
            frame = av.VideoFrame.from_ndarray(rgb, format="rgb24")
            frame.pts = i
            out.mux(video.encode(frame))
        out.mux(video.encode(None))
    frames, _times, (_rot, _codec, pix_fmt, _sar) = _read(
        derain_video(deraining, src, tmp_path / "o.mp4")
    )
    assert frames[0].shape == (21, 33, 3) and len(frames) == 2 and pix_fmt == "yuv444p"


def test_audio_is_copied_untouched(deraining: Deraining, tmp_path: Path) -> None:
    src = make_clip(tmp_path / "in.mp4", audio=True)
    dst = derain_video(deraining, src, tmp_path / "out.mkv")
    assert _audio_packets(dst) == _audio_packets(src) != []


def test_rotation_and_pixel_aspect_are_kept(deraining: Deraining, tmp_path: Path) -> None:
    src = make_clip(tmp_path / "in.mp4", 64, 48, rotation=90, aspect=Fraction(4, 3))
    frames, _times, (rotation, _codec, _fmt, sar) = _read(
        derain_video(deraining, src, tmp_path / "o.mp4")
    )
    assert rotation == 90 and sar == Fraction(4, 3)
    assert frames[0].shape == (48, 64, 3)  # stored as before; the player turns it


def test_rotated_frames_are_derained_upright(tmp_path: Path) -> None:
    # A model that records what it sees: the upright (display) frame, 48 wide and 64 high.
    seen: list[tuple[int, ...]] = []

    class Spy(Deraining):
        def run(self, image, **kwargs):  # type: ignore[no-untyped-def, override]
            seen.append(image.shape)
            return image

    spy = Spy(DANet(TINY), device="cpu", tile=None, dtype="fp32")
    src = make_clip(tmp_path / "in.mp4", 64, 48, rotation=90)
    derain_video(spy, src, tmp_path / "o.mp4")
    assert seen and set(seen) == {(64, 48, 3)}


def test_upright_means_turned_as_the_display_matrix_says(tmp_path: Path) -> None:
    # PyAV's frame.rotation is the counter-clockwise turn a player applies: a mark stored
    # top-left must reach the model bottom-left for +90 and top-right for -90.
    seen: dict[int, np.ndarray] = {}

    class Spy(Deraining):
        def run(self, image, **kwargs):  # type: ignore[no-untyped-def, override]
            seen[rotation] = image
            return image

    spy = Spy(DANet(TINY), device="cpu", tile=None, dtype="fp32")
    for rotation in (90, -90):
        src = tmp_path / f"r{rotation}.mp4"
        with av.open(str(src), "w") as out:
            video = out.add_stream("libx264", rate=25, options={"crf": "0"})
            video.width, video.height, video.pix_fmt = 64, 48, "yuv420p"
            video.set_display_rotation(rotation)
            rgb = np.zeros((48, 64, 3), np.uint8)
            rgb[:16, :16] = 255
            out.mux(video.encode(av.VideoFrame.from_ndarray(rgb, format="rgb24")))
            out.mux(video.encode(None))
        derain_video(spy, src, tmp_path / f"o{rotation}.mp4")
    assert seen[90][-8:, :8].min() > 200 and seen[90][:8, -8:].max() < 50
    assert seen[-90][:8, -8:].min() > 200 and seen[-90][-8:, :8].max() < 50


def test_save_rain_writes_a_second_video(deraining: Deraining, tmp_path: Path) -> None:
    src = make_clip(tmp_path / "in.mp4")
    # Through the method, as the README shows it: its keyword options reach derain_video.
    out = deraining.run_video(src, tmp_path / "out.mp4", rain=tmp_path / "rain.mp4", crf=30)
    assert out == tmp_path / "out.mp4" and out.stat().st_size > 0
    rain, times, _ = _read(tmp_path / "rain.mp4")
    assert len(rain) == 4 and rain[0].shape == (48, 64, 3)
    assert times == _read(src)[1]


def test_codec_and_crf(deraining: Deraining, tmp_path: Path) -> None:
    src = make_clip(tmp_path / "in.mp4")
    small = derain_video(deraining, src, tmp_path / "a.mp4", crf=40).stat().st_size
    large = derain_video(deraining, src, tmp_path / "b.mp4", crf=5).stat().st_size
    assert small < large
    assert _read(derain_video(deraining, src, tmp_path / "c.webm"))[2][1] == "vp9"
    assert _read(derain_video(deraining, src, tmp_path / "d.mkv", codec="h265"))[2][1] == "hevc"
    with pytest.raises(VideoError, match="--codec nope: no such encoder"):
        derain_video(deraining, src, tmp_path / "e.mp4", codec="nope")


def _one_line(exc: pytest.ExceptionInfo[VideoError], path: Path) -> str:
    text = str(exc.value)
    assert "\n" not in text and text.startswith(str(path))
    return text


def test_truncated_file_is_one_line(deraining: Deraining, tmp_path: Path) -> None:
    src = make_clip(tmp_path / "in.mp4", pts=tuple(range(0, 400, 40)))
    bad = tmp_path / "cut.mp4"
    bad.write_bytes(src.read_bytes()[: src.stat().st_size * 2 // 3])
    with pytest.raises(VideoError) as exc:
        derain_video(deraining, bad, tmp_path / "out.mp4")
    assert "truncated" in _one_line(exc, bad)
    assert not (tmp_path / "out.mp4").exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


#: 24 frames at 25 fps with audio, per container: (suffix, video, audio, time base, muxer).
CONTAINERS = {
    "mkv": (".mkv", "libx264", "aac", MS, None),
    "webm": (".webm", "libvpx-vp9", "libopus", MS, None),
    "mov": (".mov", "libx264", "aac", MS, None),
    "mov-faststart": (".mov", "libx264", "aac", MS, {"movflags": "faststart"}),
    "avi": (".avi", "libx264", "libmp3lame", Fraction(1, 25), None),
    "avi-ms": (".avi", "libx264", "libmp3lame", MS, None),  # header counts ms, not frames
    "mp4": (".mp4", "libx264", "aac", MS, None),
    "mp4-faststart": (".mp4", "libx264", "aac", MS, {"movflags": "faststart"}),
}


@pytest.mark.parametrize("kind", list(CONTAINERS))
def test_a_truncated_file_is_caught_in_every_container(
    deraining: Deraining, tmp_path: Path, kind: str
) -> None:
    """Cut to 60 % of its bytes: an error naming the file, never a shorter output.

    The whole file goes through first (an AVI with B-frames, whose decoder gives its frames
    out-of-order times, once failed in the encoder; one in ms ticks was called truncated)."""
    suffix, codec, audio_codec, time_base, options = CONTAINERS[kind]
    step = round(Fraction(1, 25) / time_base)
    src = make_clip(
        tmp_path / f"clip{suffix}", pts=tuple(range(0, 24 * step, step)), audio=True,
        codec=codec, audio_codec=audio_codec, time_base=time_base, options=options,
    )  # fmt: skip
    whole = tmp_path / f"whole{suffix}"
    derain_video(deraining, src, whole)  # the whole file goes through
    assert len(_read(whole)[0]) == 24
    bad = tmp_path / f"cut{suffix}"
    bad.write_bytes(src.read_bytes()[: src.stat().st_size * 6 // 10])
    out = tmp_path / f"out{suffix}"
    with pytest.raises(VideoError) as exc:
        derain_video(deraining, bad, out)
    assert "truncated" in _one_line(exc, bad)
    assert not out.exists()


@pytest.mark.parametrize("suffix", [".mp4", ".mkv"])
def test_zero_frame_file_is_one_line(deraining: Deraining, tmp_path: Path, suffix: str) -> None:
    empty = tmp_path / f"empty{suffix}"
    with av.open(str(empty), "w") as out:
        video = out.add_stream("libx264", rate=25)
        video.width, video.height, video.pix_fmt = 64, 48, "yuv420p"
        out.start_encoding()  # writes the header: a valid file with a video stream, no frames
    with pytest.raises(VideoError) as exc:
        derain_video(deraining, empty, tmp_path / "out.mp4")
    assert "no video frames" in _one_line(exc, empty)
    assert not (tmp_path / "out.mp4").exists()


def test_audio_only_file_is_one_line(deraining: Deraining, tmp_path: Path) -> None:
    sound = tmp_path / "sound.m4a"
    with av.open(str(sound), "w", format="mp4") as out:
        stream = out.add_stream("aac", rate=AUDIO_RATE)
        chunk = av.AudioFrame.from_ndarray(
            np.zeros((1, 1024), np.float32), format="fltp", layout="mono"
        )
        chunk.sample_rate, chunk.pts = AUDIO_RATE, 0
        out.mux(stream.encode(chunk))
        out.mux(stream.encode(None))
    with pytest.raises(VideoError) as exc:
        derain_video(deraining, sound, tmp_path / "out.mp4")
    assert "audio only" in _one_line(exc, sound)


def test_not_a_video_is_one_line(deraining: Deraining, tmp_path: Path) -> None:
    junk = tmp_path / "junk.mp4"
    junk.write_bytes(b"\\x00not a video" * 100)
    with pytest.raises(VideoError) as exc:
        derain_video(deraining, junk, tmp_path / "out.mp4")
    _one_line(exc, junk)


def test_frame_iterator_keeps_kind(deraining: Deraining) -> None:
    from PIL import Image

    frames = _frames(40, 24, 3)
    out = list(derain_frames(deraining, iter(frames)))
    assert [f.shape for f in out] == [(24, 40, 3)] * 3 and out[0].dtype == np.uint8
    pil = list(derain_frames(deraining, (Image.fromarray(f).convert("L") for f in frames)))
    assert [(p.mode, p.size) for p in pil] == [("L", (40, 24))] * 3
    via_method = list(deraining.run_frames(frames))
    assert all(np.array_equal(a, b) for a, b in zip(out, via_method, strict=True))


def test_probe(tmp_path: Path) -> None:
    info = probe_video(make_clip(tmp_path / "in.mp4", audio=True))
    assert (info.width, info.height, info.frames, info.has_audio) == (64, 48, 4, True)


def test_deflicker_smooths_still_parts_and_follows_motion() -> None:
    still = np.full((8, 8, 3), 100, np.uint8)
    smooth = Deflicker(strength=0.5, threshold=0.1)
    smooth(still)
    wobble = still + 4  # a small change: smoothed
    assert smooth(wobble)[0, 0, 0] == 102
    moved = still.copy()
    moved[:4] = 250  # a big change (motion): passed through at once, no trail
    assert np.array_equal(smooth(moved)[:4], moved[:4])


def test_interrupt_leaves_no_partial_output_and_a_rerun_completes(
    deraining: Deraining, tmp_path: Path
) -> None:
    src = make_clip(tmp_path / "in.mp4", pts=tuple(range(0, 320, 40)))
    dst = tmp_path / "out.mp4"

    def stop_after_three(done: int, total: int | None) -> None:
        if done == 3:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        derain_video(deraining, src, dst, progress=stop_after_three)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.mp4"]  # no output, no temp file
    seen: list[tuple[int, int | None]] = []
    derain_video(deraining, src, dst, progress=lambda d, t: seen.append((d, t)))
    assert seen[-1] == (8, 8) and len(_read(dst)[0]) == 8


def _cli(args: list[str]) -> tuple[int, str]:
    from typer.testing import CliRunner

    from derain.cli import app, with_default_verb

    result = CliRunner().invoke(app, with_default_verb(args))
    return result.exit_code, result.output


def test_cli_single_video(model_dir: Path, tmp_path: Path) -> None:
    src = make_clip(tmp_path / "clip.mp4", audio=True)
    code, out = _cli([str(src), "-o", str(tmp_path / "clean.mp4"), "-m", str(model_dir)])
    assert code == 0, out
    assert len(_read(tmp_path / "clean.mp4")[0]) == 4
    assert _audio_packets(tmp_path / "clean.mp4") == _audio_packets(src)
    code, out = _cli([str(src), "-o", str(tmp_path / "clean.png"), "-m", str(model_dir)])
    assert code == 2 and "clip.mp4 is a video; write it to a" in out
    steady = tmp_path / "steady.mkv"
    code, out = _cli([str(src), "-o", str(steady), "-m", str(model_dir), "--deflicker"])
    assert code == 0, out
    assert len(_read(steady)[0]) == 4 and _audio_packets(steady) == _audio_packets(src)


def test_audio_the_container_cannot_hold_names_the_output(
    deraining: Deraining, tmp_path: Path
) -> None:
    """AAC into WebM: one line naming the output asked for, never its hidden temp file."""
    src = make_clip(tmp_path / "clip.mp4", audio=True)
    out = tmp_path / "x.webm"
    with pytest.raises(VideoError) as exc:
        derain_video(deraining, src, out)
    text = str(exc.value)
    assert text.startswith(f"{out}: the aac audio cannot be copied into a .webm file"), text
    assert ".tmp" not in text and "\n" not in text
    assert list(tmp_path.iterdir()) == [src]


def test_quiet_h265_prints_nothing(model_dir: Path, tmp_path: Path) -> None:
    """x265 logs to the process's stderr itself: -q must silence it too (errors only)."""
    import subprocess
    import sys

    src = make_clip(tmp_path / "clip.mp4")
    out = tmp_path / "clean.mp4"
    cmd = [sys.executable, "-m", "derain", str(src), "-o", str(out), "-m", str(model_dir)]
    proc = subprocess.run(
        [*cmd, "--codec", "h265", "--device", "cpu", "-q"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == "" and proc.stdout == ""
    assert _read(out)[2][1] == "hevc"


def test_cli_folder_picks_up_videos_with_save_rain(model_dir: Path, tmp_path: Path) -> None:
    folder = tmp_path / "in"
    folder.mkdir()
    make_clip(folder / "a.mp4")
    make_clip(folder / "b.mkv", pts=(0, 50, 100))
    (folder / "broken.mov").write_bytes(b"not a video at all" * 50)
    code, out = _cli([str(folder), "-m", str(model_dir), "--save-rain", "--crf", "30"])
    assert code == 1  # the broken file fails, the others are done
    assert "broken.mov: not a video FFmpeg can read" in out
    assert "done 2, skipped 0, failed 1" in out
    names = sorted(p.name for p in folder.iterdir())
    assert names == [
        "a.mp4", "a_derained.mp4", "a_rain.mp4", "b.mkv", "b_derained.mkv", "b_rain.mkv",
        "broken.mov",
    ]  # fmt: skip
    assert len(_read(folder / "b_rain.mkv")[0]) == 3
    code, out = _cli([str(folder), "-m", str(model_dir), "--save-rain"])  # a rerun skips them
    assert "done 0, skipped 2, failed 1" in out


def test_video_carries_the_run_record(deraining: Deraining, tmp_path: Path) -> None:
    from derain.io.video import read_made_by
    from derain.record import RunRecord

    dst = derain_video(deraining, make_clip(tmp_path / "clip.mp4"), tmp_path / "out.mkv")
    record = RunRecord.parse(read_made_by(dst))
    assert record is not None and record.weights_sha256 == deraining.weights_sha256
    assert record.precision == "fp32"


def test_rerun_with_another_model_redoes_the_video(
    model_dir: Path, tmp_path: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """A video made by one model is kept on a rerun with it, and redone with another one."""
    import torch

    import derain

    torch.manual_seed(1)
    other = tmp_path_factory.mktemp("other-model")
    derain.save_pretrained(DANet(TINY), other)
    src = make_clip(tmp_path / "clip.mp4")
    dst = tmp_path / "clean.mp4"
    assert _cli([str(src), "-o", str(dst), "-m", str(model_dir)])[0] == 0
    code, out = _cli([str(src), "-o", str(dst), "-m", str(model_dir)])
    assert code == 0 and "skipped" in out and "redoing" not in out
    first = dst.read_bytes()
    code, out = _cli([str(src), "-o", str(dst), "-m", str(other)])
    assert code == 0, out
    assert f"redoing {dst}: it was made by another model" in out
    assert dst.read_bytes() != first
