"""Animated images: every frame of a GIF, an animated WebP, an APNG or a multi-page TIFF.

:func:`derain.io.imaging.open_frames` reads an image of several frames as an
:class:`Animation` (each frame whole, as it shows, with its timing); the writers
(:mod:`derain.io.writing`) store one back with :func:`save_frames` in the formats that hold
frames (:data:`ANIMATED_FORMATS`) and refuse the others. Pillow does the decoding and the
encoding: it composes each frame over the ones before it (disposal, blending, transparency),
so a frame here is the picture a viewer shows at that moment.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from typing import IO, Any

from PIL import Image

__all__ = ["ANIMATED_FORMATS", "Animation", "read_frames", "save_frames"]

#: The Pillow formats that store several frames, and the suffixes that name them.
ANIMATED_FORMATS = {"GIF": ".gif", "WEBP": ".webp", "PNG": ".png", "TIFF": ".tiff"}
#: Formats whose frames share one size and mode (a TIFF's pages are separate pictures).
_SHARED_CANVAS = ("GIF", "WEBP", "PNG")


@dataclass(frozen=True)
class Animation:
    """The frames of an animated image, each the whole picture shown at its time.

    Attributes:
        frames: the pictures, in order (RGB, or RGBA where any frame has transparency; a
            TIFF's pages keep their own sizes and modes).
        durations: how long each frame shows, in milliseconds (0 where the format keeps no
            timing: TIFF).
        loop: how many times the animation repeats (0: for ever), ``None`` where the file
            says nothing (a GIF without a loop block plays once).
        disposals: how each frame is cleared before the next (GIF and APNG codes, as read).
        format: the Pillow format the frames were read from.
        info: the first frame's metadata (colour profile, EXIF).
    """

    frames: tuple[Image.Image, ...]
    durations: tuple[int, ...]
    loop: int | None
    disposals: tuple[int, ...]
    format: str
    info: dict[str, Any]

    def __len__(self) -> int:
        return len(self.frames)

    @property
    def size(self) -> tuple[int, int]:
        """(width, height) of the first frame."""
        return self.frames[0].size

    def with_frames(self, frames: Iterable[Image.Image]) -> Animation:
        """The same animation (timing, loop, disposal) over other pictures, one per frame.

        Raises:
            ValueError: not one picture per frame.
        """
        new = tuple(frames)
        if len(new) != len(self.frames):
            raise ValueError(f"{len(new)} pictures for an animation of {len(self.frames)} frames")
        return replace(self, frames=new)


def read_frames(
    im: Image.Image, upright: Callable[[Image.Image], Image.Image] = lambda f: f
) -> Animation:
    """Every frame of an open Pillow image of several frames.

    Args:
        im: the image, as :func:`PIL.Image.open` opened it (the pixel count already checked).
        upright: applied to each frame (the EXIF rotation).
    """
    count = getattr(im, "n_frames", 1)
    loop = im.info.get("loop")
    frames, durations, disposals = [], [], []
    for index in range(count):
        im.seek(index)
        im.load()
        frames.append(upright(im.copy()))
        durations.append(round(float(im.info.get("duration", 0) or 0)))
        disposals.append(int(getattr(im, "disposal_method", im.info.get("disposal", 0)) or 0))
    im.seek(0)
    fmt = im.format or "PNG"
    if fmt in _SHARED_CANVAS:
        alpha = any(f.mode in ("RGBA", "LA", "PA") or "transparency" in f.info for f in frames)
        frames = [f.convert("RGBA" if alpha else "RGB") for f in frames]
    info = {k: v for k, v in frames[0].info.items() if k in ("icc_profile", "exif")}
    return Animation(
        tuple(frames),
        tuple(durations),
        None if loop is None else int(loop),
        tuple(disposals),
        fmt,
        info,
    )


def save_frames(animation: Animation, out: IO[bytes], fmt: str, options: dict[str, Any]) -> None:
    """Write every frame of ``animation`` to ``out`` in ``fmt`` (one of :data:`ANIMATED_FORMATS`).

    Args:
        options: Pillow's keywords for the first frame (quality, colour profile, EXIF,
            comment), as :mod:`derain.io.writing` makes them.

    Raises:
        ValueError: ``fmt`` does not hold frames.
    """
    if fmt not in ANIMATED_FORMATS:
        raise ValueError(f"the {fmt} format holds one frame, not {len(animation)}")
    first, *rest = animation.frames
    options = dict(options, save_all=True, append_images=rest)
    if fmt != "TIFF":
        options["duration"] = list(animation.durations)
        options["loop"] = 0 if animation.loop is None and fmt != "GIF" else animation.loop
        if options["loop"] is None:
            del options["loop"]
    if fmt in ("GIF", "PNG"):
        options["disposal"] = list(animation.disposals)
    if fmt == "WEBP" and first.mode == "RGBA":
        # libwebp 1.6's animation encoder dropped the alpha of lossy frames whose
        # transparency stays the same from frame to frame (file written without an alpha
        # chunk); with every frame a key frame it keeps it
        options.setdefault("kmax", 1)
    first.save(out, format=fmt, **options)
