"""Video in, video out: every frame through :class:`derain.Deraining`, audio copied untouched.

Decoding and encoding use PyAV (FFmpeg's Python bindings; its wheels bundle FFmpeg with x264,
x265 and libvpx, so no system FFmpeg is needed). Three stages overlap: a thread demuxes and
decodes, the calling thread derains, a third thread encodes and muxes; bounded queues between
them keep memory flat.

What the output keeps from the input: resolution, every frame's timestamp (so a variable
frame rate stays variable), the display matrix (rotation), the pixel aspect ratio, the colour
tags, and the first audio stream's packets, copied without re-encoding. Frames are derained in
their display orientation (a phone clip filmed upright is stored turned by 90°, its rain
running sideways) and turned back before encoding.

The output is written to a temp file beside the target and renamed when complete
(:func:`derain.atomic.atomic_write`): Ctrl-C or a kill leaves no partial video, and the same
command run again does the whole job.
"""

from __future__ import annotations

import contextlib
import functools
import os
import queue
import threading
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any, Literal, Protocol, TypedDict, overload

import numpy as np

from ..atomic import atomic_write
from ..errors import DerainError, OutputError, first_line
from ..record import RunRecord
from .suffixes import VIDEO_CONTAINERS, VIDEO_SUFFIXES, is_video_name

__all__ = [
    "VIDEO_SUFFIXES",
    "Deflicker",
    "FrameModel",
    "VideoError",
    "VideoInfo",
    "VideoOptions",
    "derain_frames",
    "derain_video",
    "is_video_name",
    "probe_video",
    "read_made_by",
]


class LayeredFrame(Protocol):
    """A derained frame with its rain layer (what ``run(..., return_layers="view")`` gives)."""

    @property
    def image(self) -> np.ndarray: ...
    @property
    def rain(self) -> np.ndarray: ...


class FrameModel(Protocol):
    """What a video needs of a model: derain one H×W×3 uint8 RGB frame, and say what ran.

    :class:`derain.Deraining` is one; anything with the same ``run`` and ``record`` will do.
    """

    @property
    def record(self) -> RunRecord: ...
    @overload
    def run(self, image: np.ndarray) -> np.ndarray: ...
    @overload
    def run(self, image: np.ndarray, *, return_layers: Literal["view"]) -> LayeredFrame: ...


#: ``--codec`` names and the encoders they mean.
_ENCODERS = {"h264": "libx264", "h265": "libx265", "hevc": "libx265", "vp9": "libvpx-vp9"}
#: Constant-rate-factor defaults that keep the look of the source: x264's 18 is "visually
#: lossless"; x265 and VP9 reach the same quality at a higher number on their own scales.
#: How far before its declared duration a whole file's streams may end (encoder delay,
#: audio priming, rounding: 0.06 s in an MKV with 16 kHz AAC), beyond one frame's time:
#: a tenth of the duration, within these bounds in seconds.
_END_SLACK_S = (0.1, 0.25)
#: FFmpeg's unit for container times (microseconds).
AV_TIME_BASE = 1_000_000
DEFAULT_CRF = {"libx264": 18, "libx265": 22, "libvpx-vp9": 31}
#: Frames held between two stages: enough to keep every stage busy, little memory.
QUEUE_FRAMES = 4
_DONE = object()
#: The container tag that holds the run record (MP4/MOV ``©cmt``, Matroska ``COMMENT``).
RECORD_TAG = "comment"


class VideoError(DerainError, ValueError):
    """A video that cannot be read, or settings that cannot write one."""


def read_made_by(path: str | os.PathLike[str]) -> str | None:
    """The run record an earlier run wrote into the video at ``path`` (see
    :mod:`derain.record`), or ``None`` if it holds none or cannot be read."""
    try:
        with _av().open(os.fspath(path)) as container:
            tags = {key.lower(): value for key, value in container.metadata.items()}
    except Exception:  # an unreadable output has no record; it is redone or skipped as before
        return None
    text = tags.get(RECORD_TAG)
    return text if RunRecord.is_record(text) else None


def _av() -> Any:
    try:
        import av
    except ImportError:
        raise VideoError(
            "video needs PyAV, which is not installed: pip install 'derain[video]'"
        ) from None
    return av


@dataclass(frozen=True)
class VideoInfo:
    """What :func:`probe_video` reads from a file's header.

    Attributes:
        width: stored frame width in pixels.
        height: stored frame height.
        frames: frame count the container declares (``None`` if it does not say).
        fps: average frame rate (``None`` if unknown).
        codec: the video codec's name.
        has_audio: whether there is an audio stream (copied to the output).
    """

    width: int
    height: int
    frames: int | None
    fps: Fraction | None
    codec: str
    has_audio: bool


def _open_input(src: Path) -> tuple[Any, Any]:
    """Open ``src`` and return (container, video stream) or raise a one-line VideoError."""
    av = _av()
    if not src.is_file():
        raise VideoError.about(src, "no such file")
    try:
        container = av.open(str(src), "r")
    except av.EOFError:
        raise VideoError.about(src, "no video frames (the file ends before the first)") from None
    except (av.FFmpegError, OSError, ValueError) as exc:
        reason = getattr(exc, "strerror", None) or first_line(exc)
        raise VideoError.about(
            src, f"not a video FFmpeg can read, or truncated ({reason})"
        ) from None
    if not container.streams.video:
        audio_only = bool(container.streams.audio)
        container.close()
        if audio_only:
            raise VideoError.about(src, "nothing to derain, the file holds audio only")
        raise VideoError.about(src, "no video frames (the file holds no video stream)")
    stream = container.streams.video[0]
    if not stream.codec_context.width or not stream.codec_context.height:
        container.close()
        raise VideoError.about(src, "the video stream has no frame size (no decodable frames)")
    return container, stream


def probe_video(src: str | os.PathLike[str]) -> VideoInfo:
    """Read a video's size, frame count and rate without decoding it.

    Raises:
        VideoError: not a readable video, or one without a video stream.
    """
    container, stream = _open_input(Path(src))
    with container:
        return VideoInfo(
            width=stream.codec_context.width,
            height=stream.codec_context.height,
            frames=stream.frames or None,
            fps=stream.average_rate or stream.guessed_rate,
            codec=stream.codec_context.name,
            has_audio=bool(container.streams.audio),
        )


class Deflicker:
    """Motion-adaptive temporal smoothing of derained frames (``--deflicker``).

    Each output pixel moves towards the new frame by ``1 - strength`` where the two differ by
    less than ``threshold`` (the residue of rain removed differently in each frame) and takes
    the new frame outright where they differ more (motion, a cut), so moving things leave no
    trail. A change smaller than ``threshold`` (a slow fade) reaches the output over a few
    frames instead of at once.

    Args:
        strength: weight of the running output in still parts, in [0, 1).
        threshold: difference (on the 0..1 scale, the largest of the three channels) above
            which a pixel counts as moving.
    """

    def __init__(self, strength: float = 0.75, threshold: float = 0.08) -> None:
        if not 0.0 <= strength < 1.0:
            raise DerainError(f"deflicker strength must be in [0, 1), got {strength}")
        if threshold <= 0.0:
            raise DerainError(f"deflicker threshold must be > 0, got {threshold}")
        self.strength = strength
        self.threshold = threshold
        self._state: np.ndarray | None = None

    def reset(self) -> None:
        """Forget the running output (the next frame passes unchanged)."""
        self._state = None

    def __call__(self, frame: np.ndarray) -> np.ndarray:
        """Smooth one uint8 H×W×3 frame; returns a new uint8 array."""
        current = frame.astype(np.float32) * np.float32(1 / 255)
        if self._state is None or self._state.shape != current.shape:
            self._state = current
            return frame.copy()
        diff = np.abs(current - self._state).max(axis=2, keepdims=True)
        # 1 where still, falling linearly to 0 at the threshold.
        weight = np.clip(1.0 - diff / np.float32(self.threshold), 0.0, 1.0)
        weight *= np.float32(self.strength)
        state = current + weight * (self._state - current)
        self._state = state
        return np.clip(np.rint(state * 255.0), 0, 255).astype(np.uint8)


def _as_rgb_uint8(frame: Any) -> tuple[np.ndarray, Callable[[np.ndarray], Any]]:
    """A frame as H×W×3 uint8, and the way back to the caller's kind."""
    from PIL import Image

    if isinstance(frame, Image.Image):
        mode = frame.mode
        rgb = np.asarray(frame.convert("RGB"))
        return rgb, lambda out: Image.fromarray(out).convert(mode)
    if isinstance(frame, np.ndarray) and frame.dtype == np.uint8 and frame.shape[2:] == (3,):
        return frame, lambda out: out
    raise DerainError(
        "frames must be PIL images or H×W×3 uint8 arrays, "
        f"got {type(frame).__name__} {getattr(frame, 'shape', '')}".rstrip()
    )


def derain_frames(
    deraining: FrameModel,
    frames: Iterable[Any],
    *,
    deflicker: Deflicker | None = None,
) -> Iterator[Any]:
    """Derain a sequence of frames one by one, lazily, in order.

    Args:
        deraining: the model to run.
        frames: PIL images or H×W×3 uint8 numpy arrays (RGB).
        deflicker: optional temporal smoothing across the frames (see :class:`Deflicker`).

    Yields:
        Each derained frame, of the same kind, size and mode as it came in.
    """
    for frame in frames:
        rgb, back = _as_rgb_uint8(frame)
        out = deraining.run(rgb)
        yield back(deflicker(out) if deflicker is not None else out)


def _encoder(codec: str | None, suffix: str) -> str:
    av = _av()
    if codec is None:
        codec = "vp9" if suffix == ".webm" else "h264"
    name = _ENCODERS.get(codec.lower(), codec)
    if name not in av.codecs_available:
        known = ", ".join(sorted(_ENCODERS))
        raise VideoError(f"--codec {codec}: no such encoder in this FFmpeg build; try {known}")
    try:
        av.Codec(name, "w")
    except (av.FFmpegError, ValueError):
        raise VideoError(f"--codec {codec}: {name} cannot encode") from None
    return name


def _encoder_options(name: str, crf: int | None) -> dict[str, str]:
    # x265 prints ~25 lines of its settings straight to stderr, past derain's -q and its
    # own reporting: errors only (FFmpeg's other encoders log through PyAV, which is off).
    options = {"x265-params": "log-level=error"} if name == "libx265" else {}
    value = crf if crf is not None else DEFAULT_CRF.get(name)
    if value is None:
        return options
    options["crf"] = str(value)
    if name == "libvpx-vp9":
        options["b"] = "0"  # constant quality: no bitrate target
        options["row-mt"] = "1"
    return options


def _display_matrix(frame: Any) -> list[int] | None:
    """The frame's display matrix (rotation, flips) as 9 ints, if it carries one."""
    av = _av()
    side = getattr(frame, "side_data", None)
    if side is None:
        return None
    # A mapping from the kind (PyAV 18.1.1 iterates its keys, 18.1.0 its entries): look up.
    entry = side.get(av.sidedata.sidedata.Type.DISPLAYMATRIX)
    return None if entry is None else np.frombuffer(bytes(entry), dtype="<i4")[:9].tolist()


@dataclass(frozen=True)
class _Frame:
    """A decoded frame on its way through the pipeline."""

    rgb: np.ndarray  # upright (display orientation) until derained, then stored orientation
    pts: int | None
    time_base: Fraction | None
    rotation: int
    matrix: list[int] | None
    rain: np.ndarray | None = None


@dataclass(frozen=True)
class _Packet:
    """An audio packet, copied to the output as it is."""

    packet: Any


class _Stopped(Exception):
    """Another stage failed or the run was interrupted: stop this one."""


class _Lane:
    """A bounded queue between two stages that gives up when the run stops."""

    def __init__(self, stop: threading.Event) -> None:
        self.stop = stop
        self.queue: queue.Queue[Any] = queue.Queue(QUEUE_FRAMES)

    def put(self, item: Any) -> None:
        while not self.stop.is_set():
            try:
                self.queue.put(item, timeout=0.1)
                return
            except queue.Full:
                continue
        raise _Stopped

    def get(self) -> Any:
        while True:
            try:
                return self.queue.get(timeout=0.1)
            except queue.Empty:
                if self.stop.is_set():
                    raise _Stopped from None


class _Writer:
    """Encodes frames and muxes them, with the copied audio, into one output file."""

    def __init__(
        self,
        path: Path,
        suffix: str,
        stream: Any,
        audio: Any,
        encoder: str,
        crf: int | None,
        matrix: list[int] | None,
        made_by: str,
        shown: Path | None = None,
    ) -> None:
        """Write to ``path`` (a temp file); messages name ``shown``, the output it becomes."""
        av = _av()
        shown = shown or path
        try:
            self.container = av.open(str(path), "w", format=VIDEO_CONTAINERS[suffix])
        except (av.FFmpegError, OSError) as exc:
            raise OutputError.about(shown, f"cannot write ({first_line(exc)})") from None
        # The run record (derain.record), where every container keeps a comment.
        self.container.metadata[RECORD_TAG] = made_by
        ctx = stream.codec_context
        rate = stream.average_rate or stream.guessed_rate or Fraction(25)
        out = self.container.add_stream(encoder, rate=rate, options=_encoder_options(encoder, crf))
        out.width, out.height = ctx.width, ctx.height
        odd = ctx.width % 2 or ctx.height % 2
        # 4:2:0 needs even sides; an odd-sized frame keeps its size in 4:4:4.
        out.pix_fmt = "yuv444p" if odd else "yuv420p"
        out.time_base = stream.time_base
        out.codec_context.time_base = stream.time_base
        if ctx.sample_aspect_ratio:
            out.sample_aspect_ratio = ctx.sample_aspect_ratio
            out.codec_context.sample_aspect_ratio = ctx.sample_aspect_ratio
        for tag in ("color_range", "color_primaries", "color_trc", "colorspace"):
            with contextlib.suppress(AttributeError, ValueError, TypeError):
                setattr(out.codec_context, tag, getattr(ctx, tag))
        if matrix is not None:
            out.set_display_matrix(matrix)
        self.video = out
        self.audio = None
        if audio is not None:
            try:
                self.audio = self.container.add_stream_from_template(audio)
            except (av.FFmpegError, ValueError) as exc:
                self.container.close()
                raise VideoError.about(
                    shown,
                    f"the {audio.codec_context.name} audio cannot be copied into a "
                    f"{suffix} file ({first_line(exc)}); choose another output suffix",
                ) from None

    def frame(self, rgb: np.ndarray, pts: int | None, time_base: Fraction | None) -> None:
        av = _av()
        frame = av.VideoFrame.from_ndarray(rgb, format="rgb24")
        frame.pts = pts
        if time_base is not None:
            frame.time_base = time_base
        for packet in self.video.encode(frame):
            self.container.mux(packet)

    def packet(self, packet: Any) -> None:
        if self.audio is None or packet.dts is None:
            return  # FFmpeg's demuxer emits an empty flush packet per stream at the end
        packet.stream = self.audio
        self.container.mux(packet)

    def close(self) -> None:
        for packet in self.video.encode(None):
            self.container.mux(packet)
        self.container.close()


def _turn(rgb: np.ndarray, rotation: int) -> np.ndarray:
    """Stored orientation -> display orientation (``rotation`` counter-clockwise degrees)."""
    k = (rotation // 90) % 4
    return np.ascontiguousarray(np.rot90(rgb, k)) if k else rgb


def _unturn(rgb: np.ndarray, rotation: int) -> np.ndarray:
    k = (rotation // 90) % 4
    return np.ascontiguousarray(np.rot90(rgb, -k)) if k else rgb


def _declared_end(container: Any, stream: Any) -> float | None:
    """Where the file says its video ends, in seconds (``None`` if it does not say).

    The video stream's own duration when the container records one (MP4, MOV); an AVI's
    header length, which counts time-base ticks; else the container's duration (MKV, WebM),
    which also covers the audio.
    """
    start = float((stream.start_time or 0) * stream.time_base) if stream.time_base else 0.0
    if container.format.name == "avi" and stream.frames and stream.time_base:
        return start + float(stream.frames * stream.time_base)
    if stream.duration and stream.time_base:
        return start + float(stream.duration * stream.time_base)
    if container.duration:
        return (container.start_time or 0) / AV_TIME_BASE + container.duration / AV_TIME_BASE
    return None


def _packet_end(packet: Any) -> float | None:
    if packet.pts is None or not packet.time_base:
        return None
    return float((packet.pts + (packet.duration or 0)) * packet.time_base)


def _decode(src: Path, container: Any, stream: Any, put: Callable[[Any], None]) -> None:
    """Decode every frame (and pass the audio packets on); raise if the file ends early.

    Truncation shows as a decoder error, as fewer frames than declared, or as streams that
    end before the duration the container declares (MKV and WebM declare no frame count).
    """
    av = _av()
    audio = container.streams.audio[0] if container.streams.audio else None
    streams = [stream] if audio is None else [stream, audio]
    # AVI stores no presentation times: its frames are evenly spaced, in decoding order's
    # count (the decoder's guesses come out of order when there are B-frames).
    rate = stream.guessed_rate or stream.average_rate
    even = container.format.name == "avi" and rate and stream.time_base
    step = max(1, round(1 / (rate * stream.time_base))) if even else 0
    first: int | None = None
    index, reached = 0, 0.0
    try:
        for packet in container.demux(streams):
            end = _packet_end(packet)
            if end is not None:
                reached = max(reached, end)
            if packet.stream is audio:
                put(_Packet(packet))
                continue
            if packet.is_corrupt:
                raise VideoError.about(
                    src, f"truncated or corrupt after frame {index} (cut packet)"
                )
            for frame in packet.decode():
                rotation = frame.rotation
                rgb = _turn(frame.to_ndarray(format="rgb24"), rotation)
                pts = frame.pts
                if even:
                    first = pts if first is None else first
                    pts = None if first is None else first + index * step
                put(_Frame(rgb, pts, frame.time_base, rotation, _display_matrix(frame)))
                index += 1
    except av.FFmpegError as exc:
        if index == 0:
            raise VideoError.about(src, f"no frame could be decoded ({first_line(exc)})") from None
        raise VideoError.about(
            src, f"truncated or corrupt after frame {index} ({first_line(exc)})"
        ) from None
    if index == 0:
        raise VideoError.about(src, "no video frames (the video stream is empty)")
    if stream.frames and index < stream.frames and container.format.name != "avi":
        raise VideoError.about(
            src, f"truncated: {index} of the {stream.frames} declared frames decode"
        )
    declared = _declared_end(container, stream)
    if declared is None or not reached:
        return
    least, most = _END_SLACK_S
    slack = min(most, max(least, declared / 10)) + (1 / float(rate) if rate else 0.0)
    if reached < declared - slack:
        raise VideoError.about(
            src,
            f"truncated: the streams end at {reached:.2f} s of the {declared:.2f} s "
            "the file declares",
        )


class VideoOptions(TypedDict, total=False):
    """The keyword options of :func:`derain_video`, for :meth:`Deraining.run_video`."""

    rain: str | os.PathLike[str] | None
    codec: str | None
    crf: int | None
    deflicker: Deflicker | None
    progress: Callable[[int, int | None], None] | None
    record: RunRecord | None


def derain_video(
    deraining: FrameModel,
    src: str | os.PathLike[str],
    dst: str | os.PathLike[str],
    *,
    rain: str | os.PathLike[str] | None = None,
    codec: str | None = None,
    crf: int | None = None,
    deflicker: Deflicker | None = None,
    progress: Callable[[int, int | None], None] | None = None,
    record: RunRecord | None = None,
) -> Path:
    """Derain every frame of ``src`` into ``dst`` (see the module docstring for what is kept).

    Args:
        deraining: the model to run.
        src: the input video.
        dst: the output; its suffix chooses the container (.mp4, .mov, .mkv, .webm, .avi).
        rain: also write the rain layer (what was removed, grey) as a video here.
        codec: ``h264`` (default; ``vp9`` for .webm), ``h265``, ``vp9`` or an FFmpeg
            encoder name.
        crf: constant rate factor (quality; lower is better). Default 18 for H.264.
        deflicker: temporal smoothing of the derained frames (see :class:`Deflicker`).
        progress: called as ``progress(done, total)`` after each frame; ``total`` is the
            declared frame count, else one estimated from duration and rate, else ``None``.
        record: the run record to write (default: ``deraining.record``; a batch adds the
            input's identity).

    Returns:
        ``dst`` as a :class:`Path`.

    Raises:
        VideoError: unreadable, truncated, zero-frame or audio-only input; bad settings.
        OutputError: the output cannot be written.
    """
    src, dst = Path(src), Path(dst)
    suffix = dst.suffix.lower()
    if suffix not in VIDEO_CONTAINERS:
        raise VideoError.about(
            dst, f"unknown video suffix; use {', '.join(sorted(VIDEO_CONTAINERS))}"
        )
    rain_path = Path(rain) if rain is not None else None
    if rain_path is not None and rain_path.suffix.lower() not in VIDEO_CONTAINERS:
        raise VideoError.about(rain_path, "unknown video suffix")
    encoder = _encoder(codec, suffix)
    container, stream = _open_input(src)
    if deflicker is not None:
        deflicker.reset()

    def write_all(tmp: Path, rain_tmp: Path | None) -> None:
        with container:
            target = (tmp, suffix, dst)
            _run_pipeline(
                deraining,
                src,
                container,
                stream,
                target,
                rain_tmp,
                encoder,
                crf,
                deflicker,
                progress,
                (record or deraining.record).format(),
            )

    if rain_path is None:
        atomic_write(dst, lambda tmp: write_all(tmp, None))
    else:
        # The rain video is renamed into place after the derained one is complete.
        def outer(rain_tmp: Path) -> None:
            atomic_write(dst, lambda tmp: write_all(tmp, rain_tmp))

        atomic_write(rain_path, outer)
    return dst


def _estimate_frames(container: Any, stream: Any) -> int | None:
    """Frame count from duration × rate, for containers that do not declare it (mkv, webm)."""
    rate = stream.average_rate or stream.guessed_rate
    if not rate:
        return None
    if stream.duration and stream.time_base:
        seconds = float(stream.duration * stream.time_base)
    elif container.duration:
        seconds = container.duration / AV_TIME_BASE
    else:
        return None
    return max(1, round(seconds * float(rate)))


def _run_pipeline(
    deraining: FrameModel,
    src: Path,
    container: Any,
    stream: Any,
    target: tuple[Path, str, Path],
    rain_tmp: Path | None,
    encoder: str,
    crf: int | None,
    deflicker: Deflicker | None,
    progress: Callable[[int, int | None], None] | None,
    made_by: str,
) -> None:
    """Decode (thread) -> derain (this thread) -> encode (thread), overlapped.

    ``target`` is (the temp file written, its suffix, the name messages give).
    """
    tmp, suffix, shown = target
    stop = threading.Event()
    errors: list[BaseException] = []
    decoded, derained = _Lane(stop), _Lane(stop)
    audio = container.streams.audio[0] if container.streams.audio else None
    outputs = _OutputFiles(tmp, suffix, shown, rain_tmp, stream, audio, encoder, crf, made_by)
    read = functools.partial(_read_stage, src, container, stream, decoded)
    write = functools.partial(_write_stage, derained, outputs)
    reader = threading.Thread(
        target=_guarded(read, errors, stop), name="derain-decode", daemon=True
    )
    writer = threading.Thread(
        target=_guarded(write, errors, stop), name="derain-encode", daemon=True
    )
    reader.start()
    writer.start()
    try:
        total = stream.frames or _estimate_frames(container, stream)
        _derain_stage(
            deraining, decoded, derained, rain_tmp is not None, deflicker, progress, total
        )
        writer.join()
    except _Stopped:
        pass
    finally:
        stop.set()
        reader.join(timeout=5)
        writer.join(timeout=5)
    if errors:
        raise errors[0]


def _guarded(
    work: Callable[[], None], errors: list[BaseException], stop: threading.Event
) -> Callable[[], None]:
    """``work`` as a thread's target: a stop ends it quietly; an error is kept in ``errors``
    (the calling thread raises it) and stops the other stages."""

    def run() -> None:
        try:
            work()
        except _Stopped:
            pass
        except BaseException as exc:  # handed to the calling thread, which raises it
            errors.append(exc)
            stop.set()

    return run


def _read_stage(src: Path, container: Any, stream: Any, decoded: _Lane) -> None:
    """The reader thread: every decoded frame and audio packet into ``decoded``, then the end."""
    _decode(src, container, stream, decoded.put)
    decoded.put(_DONE)


@dataclass(frozen=True)
class _OutputFiles:
    """What the writer thread writes: the derained video (and the rain layer's, if asked)."""

    tmp: Path
    suffix: str
    shown: Path
    rain_tmp: Path | None
    stream: Any
    audio: Any
    encoder: str
    crf: int | None
    made_by: str

    def open(self, matrix: list[int] | None, writers: list[_Writer]) -> None:
        """Open the writers into ``writers`` (each as it opens, so a failure closes the rest)."""
        settings = (self.encoder, self.crf, matrix, self.made_by)
        writers.append(
            _Writer(self.tmp, self.suffix, self.stream, self.audio, *settings, self.shown)
        )
        if self.rain_tmp is not None:
            writers.append(_Writer(self.rain_tmp, self.suffix, self.stream, None, *settings))


def _write_stage(derained: _Lane, outputs: _OutputFiles) -> None:
    """The writer thread: encode and mux what comes through ``derained`` until its end."""
    writers: list[_Writer] = []
    early_audio: list[Any] = []
    try:
        while (item := derained.get()) is not _DONE:
            if isinstance(item, _Packet):
                if writers:
                    writers[0].packet(item.packet)
                else:
                    early_audio.append(item.packet)
                continue
            if not writers:  # the first frame carries the display matrix
                outputs.open(item.matrix, writers)
                for packet in early_audio:
                    writers[0].packet(packet)
            writers[0].frame(item.rgb, item.pts, item.time_base)
            if outputs.rain_tmp is not None:
                writers[1].frame(item.rain, item.pts, item.time_base)
        for w in writers:
            w.close()
    except BaseException:
        for w in writers:
            with contextlib.suppress(Exception):
                w.container.close()
        raise


def _derain_stage(
    deraining: FrameModel,
    decoded: _Lane,
    derained: _Lane,
    with_rain: bool,
    deflicker: Deflicker | None,
    progress: Callable[[int, int | None], None] | None,
    total: int | None,
) -> None:
    """The derain loop (the calling thread): frames from ``decoded``, derained, to ``derained``;
    audio packets pass through."""
    done = 0
    while (item := decoded.get()) is not _DONE:
        if isinstance(item, _Packet):
            derained.put(item)
            continue
        derained.put(_derain_frame(deraining, item, with_rain, deflicker))
        done += 1
        if progress is not None:
            progress(done, total)
    derained.put(_DONE)


def _derain_frame(
    deraining: FrameModel, item: _Frame, with_rain: bool, deflicker: Deflicker | None
) -> _Frame:
    """Derain one upright frame and turn it (and its rain layer) back to stored orientation."""
    rain = None
    if not with_rain:
        out = deraining.run(item.rgb)
    else:
        # the same fixed gain as the images' rain layers, so strengths compare
        result = deraining.run(item.rgb, return_layers="view")
        out = result.image
        rain = _unturn(np.repeat(np.asarray(result.rain)[:, :, None], 3, axis=2), item.rotation)
    if deflicker is not None:
        out = deflicker(out)
    out = _unturn(out, item.rotation)
    return _Frame(out, item.pts, item.time_base, item.rotation, item.matrix, rain)
