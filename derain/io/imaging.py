"""Conversion between what users pass in (paths, PIL, numpy, torch) and the network's tensors.

Every input becomes a float32 RGB tensor in [0, 1] plus a ``restore`` function that turns the
derained RGB back into the caller's kind, size, mode and dtype. Channels the network does not
touch (alpha) are carried through unchanged.
"""

from __future__ import annotations

import contextlib
import io
import math
import os
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, BinaryIO

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError

from ..errors import DerainWarning, ImageError, first_line
from . import png16
from .animation import ANIMATED_FORMATS, Animation, read_frames

__all__ = [
    "Decoded",
    "ImageInput",
    "ImageSource",
    "decode",
    "frame_count",
    "gray_range",
    "open_frames",
    "open_image",
    "rgb8",
]

Restore = Callable[[np.ndarray], Any]


@dataclass
class Decoded:
    """An input image ready for the network.

    Attributes:
        rgb: H×W×3, C-contiguous: float32 in [0, 1], or uint8 as given for 8-bit RGB inputs
            (photos, video frames), which the device converts (see :mod:`derain.devicepath`).
        restore: maps a derained H×W×3 float array in [0, 1] back to the caller's kind; where
            ``rgb`` is uint8 it also takes the uint8 result as it is.
        restore_gray: maps an H×W float array in [0, 1] (rain strength, mask) to the caller's
            kind, for the auxiliary outputs.
    """

    rgb: np.ndarray
    restore: Restore
    restore_gray: Restore


#: What :func:`open_image` reads: a file path, the encoded bytes, or a binary file object.
ImageSource = str | os.PathLike[str] | bytes | BinaryIO


def open_image(source: ImageSource, name: str | None = None) -> Image.Image:
    """Read an image fully, with its EXIF orientation applied: the one image reader.

    Everything that reads pixels (inference, the CLI, scoring, training data, synthetic rain)
    calls this, so they all see the same upright pixels and the same one-line errors. An
    image of several frames gives its first, with a :class:`~derain.errors.DerainWarning`;
    :func:`open_frames` reads them all.

    Args:
        source: a path, the encoded bytes (``stdin``, an upload) or a binary file object.
        name: how messages name the image; by default the path, or ``<bytes>``/``<stream>``.

    Raises:
        ImageError: one line naming the image and what is wrong with it.
    """
    image = _read(source, name, all_frames=False)
    assert isinstance(image, Image.Image)
    return image


def open_frames(source: ImageSource, name: str | None = None) -> Image.Image | Animation:
    """As :func:`open_image`, but an animated GIF, WebP or PNG or a multi-page TIFF comes
    back as an :class:`~derain.io.animation.Animation` of every frame.

    The decompression-bomb guard counts the pixels of all the frames.

    Raises:
        ImageError: as :func:`open_image`; also for frames that hold too many pixels in all.
    """
    return _read(source, name, all_frames=True)


def frame_count(source: str | os.PathLike[str] | bytes | IO[bytes]) -> int:
    """How many frames an image file holds, read from its header (1 when it cannot tell:
    a still image, or a file that does not open). An open binary file that can seek is read
    only as far as the format needs (a PNG's or TIFF's headers, not its pixels)."""
    opened = io.BytesIO(source) if isinstance(source, bytes) else source
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with Image.open(opened) as im:
                return max(1, int(getattr(im, "n_frames", 1)))
    except Exception:  # unreadable: the reader says why when the file is derained
        return 1


def _frames_fit(im: Image.Image, frames: int, label: str) -> None:
    """Refuse frames whose pixels add up past Pillow's decompression-bomb limit."""
    limit = Image.MAX_IMAGE_PIXELS
    total = im.width * im.height * frames
    if limit is not None and total > limit:
        raise ImageError.about(
            label,
            f"{frames} frames of {im.width}×{im.height} ({total:,} pixels in all) are "
            f"too many for the decompression-bomb guard ({limit:,} pixels); pass --max-pixels "
            "N to allow it (in Python: raise PIL.Image.MAX_IMAGE_PIXELS)",
        )


def _read(source: ImageSource, name: str | None, all_frames: bool) -> Image.Image | Animation:
    if isinstance(source, (str, os.PathLike)):
        label = name or os.fspath(source)
        p = Path(os.fspath(source))
        if p.is_dir():
            raise ImageError.about(label, "is a directory, not an image")
        if not p.exists():
            raise ImageError.about(label, "no such file")
        empty = p.stat().st_size == 0
        opened: Path | BinaryIO = p
    else:
        # A stream is read whole (the decoded image is larger anyway), so its bytes get the
        # same checks as a file's.
        if isinstance(source, (bytes, bytearray, memoryview)):
            label, data = name or "<bytes>", bytes(source)
        else:
            label, data = name or "<stream>", source.read()
        empty = len(data) == 0
        opened = io.BytesIO(data)
    if empty:
        raise ImageError.about(label, "file is empty")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # "Corrupt EXIF data" on opening a JPEG
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(opened) as im:
                frames = getattr(im, "n_frames", 1)
                # an animation of a format that holds frames; an MPO (a JPEG with a second
                # picture: a preview, a depth map) stays its first picture, as before
                if frames > 1 and all_frames and im.format in ANIMATED_FORMATS:
                    _frames_fit(im, frames, label)
                    return read_frames(im, _exif_transpose)
                if frames > 1:
                    im.seek(0)  # animated: the first frame, with a warning
                im.load()
                out = _exif_transpose(im)
                out.info.update({k: v for k, v in im.info.items() if k not in out.info})
                out.format = im.format
                orientation = _png_orientation(im) if im.format == "PNG" else 1
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise ImageError.about(
            label,
            f"image is too large for Pillow's decompression-bomb guard ({exc}); "
            "pass --max-pixels N to allow it (in Python: raise PIL.Image.MAX_IMAGE_PIXELS)",
        ) from None
    except UnidentifiedImageError:
        raise ImageError.about(label, "not an image file Pillow can read") from None
    except ImageError:
        raise
    except Exception as exc:  # Pillow's plugins raise many kinds (IndexError, struct.error…)
        raise ImageError.about(label, f"cannot read image ({_pillow_reason(exc)})") from None
    if frames > 1:
        warnings.warn(
            f"{label}: animated image with {frames} frames; only the first is read "
            "(open_frames reads them all)",
            DerainWarning,
            stacklevel=2,
        )
    if out.format == "PNG":
        _attach_rgb16(out, opened, label, orientation)
    return out


#: The EXIF tag of the orientation.
_ORIENTATION = 0x0112


def _png_orientation(im: Image.Image) -> int:
    """A PNG's EXIF orientation: 1 when it has none, or an EXIF block that cannot be read."""
    try:
        return int(im.getexif().get(_ORIENTATION, 1))
    except Exception:  # a broken EXIF block is read as upright, as _exif_transpose does
        return 1


def _attach_rgb16(im: Image.Image, opened: Path | BinaryIO, label: str, orientation: int) -> None:
    """Keep a 16-bit RGB(A) PNG's pixels (Pillow reads 8 bits) in ``im.info[png16.RGB16_KEY]``."""
    if isinstance(opened, Path):
        with open(opened, "rb") as f:
            head = f.read(32)
    else:
        opened.seek(0)
        head = opened.read(32)
    if not png16.is_deep_rgb_png(head):
        return
    if orientation != 1:
        message = f"{label}: 16-bit RGB PNG with an EXIF rotation read in 8 bits"
        warnings.warn(message, DerainWarning, stacklevel=3)
        return
    if isinstance(opened, Path):
        data = opened.read_bytes()
    else:
        opened.seek(0)
        data = opened.read()
    pixels = png16.read(data, label)
    if pixels is not None and pixels.shape[:2] == (im.height, im.width):
        im.info[png16.RGB16_KEY] = pixels


#: Anything :func:`rgb8` turns into pixels: a source :func:`open_image` reads, or pixels.
ImageInput = ImageSource | Image.Image | np.ndarray


def rgb8(image: ImageInput, name: str | None = None, min_side: int = 0) -> np.ndarray:
    """Any image as a uint8 RGB array (H×W×3): the form the metrics and training work on.

    Args:
        image: anything :func:`open_image` reads, a PIL image (any mode), or a uint8 array
            (H×W gray or H×W×3).
        name: how messages name the image.
        min_side: enlarge (bicubic, aspect kept) until the shorter side is at least this, so
            a crop of that size fits.

    Raises:
        ImageError: unreadable, or an array that is not uint8 H×W / H×W×3.

    Example:
        >>> rgb8(np.zeros((2, 2), dtype=np.uint8)).shape
        (2, 2, 3)
        >>> rgb8(np.zeros((2, 4), dtype=np.uint8), min_side=3).shape
        (3, 6, 3)
    """
    if isinstance(image, np.ndarray):
        label = name or "image"
        if image.dtype != np.uint8:
            raise ImageError.about(label, f"expected a uint8 image, got dtype {image.dtype}")
        if image.ndim == 2:
            image = np.repeat(image[:, :, None], 3, axis=2)
        elif image.ndim != 3 or image.shape[2] != 3:
            raise ImageError.about(
                label, f"expected an H×W or H×W×3 image, got shape {image.shape}"
            )
        if min(image.shape[:2]) >= min_side:
            return image
        image = Image.fromarray(image)
    elif not isinstance(image, Image.Image):
        image = open_image(image, name)
    im = image.convert("RGB")
    if min(im.size) < min_side:
        scale = min_side / min(im.size)
        size = (math.ceil(im.width * scale), math.ceil(im.height * scale))
        im = im.resize(size, Image.Resampling.BICUBIC)
    return np.asarray(im, dtype=np.uint8)


def _pillow_reason(exc: BaseException) -> str:
    """Pillow's own messages as they are; other errors of its plugins with their type."""
    text = first_line(exc)
    if isinstance(exc, (OSError, SyntaxError, ValueError, EOFError)) or not str(exc).strip():
        return text
    return f"{type(exc).__name__}: {text}"


def _exif_transpose(im: Image.Image) -> Image.Image:
    # Pillow warns (several lines on stderr) about a corrupt EXIF block each time it parses it:
    # parse it here once, quietly, so later getexif() calls get the cached result.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        try:
            out = ImageOps.exif_transpose(im)
        except Exception:  # a broken EXIF block must not lose the picture
            out = None
        out = out if out is not None else im.copy()
        with contextlib.suppress(Exception):  # a failed parse is cached too: half an EXIF
            out.getexif()
    return out


def decode(image: Any, name: str = "image") -> Decoded:
    """Split an image of any supported kind into network input and a way back.

    Supported: PIL images of every common mode; numpy arrays H×W, H×W×1, H×W×3, H×W×4 of
    uint8, uint16 or float in [0, 1]; torch tensors C×H×W (C in 1, 3, 4) in [0, 1].
    """
    if isinstance(image, Image.Image):
        return _decode_pil(_exif_transpose(image), name)
    if isinstance(image, np.ndarray):
        return _decode_array(image, name)
    if isinstance(image, torch.Tensor):
        return _decode_tensor(image, name)
    raise ImageError.about(name, f"unsupported input type {type(image).__name__}")


#: How far float pixels may stray outside [0, 1] (rounding in the caller's arithmetic).
FLOAT_RANGE_TOLERANCE = 1e-3


def _check_unit_range(arr: np.ndarray, name: str) -> None:
    if arr.size == 0:
        return
    lo, hi = float(arr.min()), float(arr.max())
    if lo >= -FLOAT_RANGE_TOLERANCE and hi <= 1.0 + FLOAT_RANGE_TOLERANCE:
        return
    raise ImageError.about(
        name,
        f"float values span [{lo:.4g}, {hi:.4g}] but must lie in [0, 1]; "
        "for 0..255 data divide by 255 (or pass uint8)",
    )


def _decode_array(arr: np.ndarray, name: str) -> Decoded:
    if arr.ndim not in (2, 3) or (arr.ndim == 3 and arr.shape[2] not in (1, 2, 3, 4)):
        raise ImageError.about(name, f"array of shape {arr.shape} is not H×W or H×W×{{1,2,3,4}}")
    if arr.shape[0] == 0 or arr.shape[1] == 0:
        raise ImageError.about(name, f"image is empty (shape {arr.shape})")
    dtype = arr.dtype
    if dtype == np.uint8:
        scale = 255.0
    elif dtype == np.uint16:
        scale = 65535.0
    elif np.issubdtype(dtype, np.floating):
        scale = 1.0
        if not np.isfinite(arr).all():
            raise ImageError.about(name, "array contains NaN or infinity")
        _check_unit_range(arr, name)
    else:
        raise ImageError.about(name, f"unsupported dtype {dtype}; use uint8, uint16 or float")

    def to_dtype(x: np.ndarray) -> np.ndarray:
        x = np.clip(x, 0.0, 1.0)
        if scale == 1.0:
            return x.astype(dtype)
        return np.rint(x * scale).astype(dtype)

    if dtype == np.uint8 and arr.shape[2:] == (3,):
        # 8-bit RGB travels as it is; the result comes back as uint8 (or float with layers)
        def restore8(out: np.ndarray) -> np.ndarray:
            return out if out.dtype == np.uint8 else to_dtype(out)

        return Decoded(np.ascontiguousarray(arr), restore8, to_dtype)
    data = arr.astype(np.float32) / np.float32(scale)
    squeeze = arr.ndim == 2
    if squeeze:
        data = data[:, :, None]
    channels = data.shape[2]
    gray = channels in (1, 2)  # 2 channels: gray + alpha
    alpha = data[:, :, -1:] if channels in (2, 4) else None
    rgb = np.repeat(data[:, :, :1], 3, axis=2) if gray else data[:, :, :3]

    def restore(out: np.ndarray) -> np.ndarray:
        res = out.mean(axis=2, keepdims=True) if gray else out
        if alpha is not None:
            res = np.concatenate([res, alpha], axis=2)
        res = to_dtype(res)
        return res[:, :, 0] if squeeze else res

    return Decoded(np.ascontiguousarray(rgb), restore, to_dtype)


def _decode_tensor(t: torch.Tensor, name: str) -> Decoded:
    if t.ndim != 3 or t.shape[0] not in (1, 2, 3, 4):
        raise ImageError.about(name, f"tensor of shape {tuple(t.shape)} is not C×H×W, C in 1..4")
    if not t.is_floating_point():
        raise ImageError.about(name, f"tensor dtype {t.dtype} is not floating point in [0, 1]")
    if t.shape[1] == 0 or t.shape[2] == 0:
        raise ImageError.about(name, f"image is empty (shape {tuple(t.shape)})")
    if not torch.isfinite(t).all():
        raise ImageError.about(name, "tensor contains NaN or infinity")
    arr = t.detach().to("cpu", torch.float32).permute(1, 2, 0).numpy()
    inner = _decode_array(arr, name)
    dtype, device = t.dtype, t.device

    def back(x: np.ndarray) -> torch.Tensor:
        x = x[:, :, None] if x.ndim == 2 else x
        return torch.from_numpy(np.ascontiguousarray(x)).permute(2, 0, 1).to(device, dtype)

    return Decoded(
        inner.rgb,
        lambda out: back(inner.restore(out)),
        lambda g: back(inner.restore_gray(g)),
    )


def _decode_pil(im: Image.Image, name: str) -> Decoded:
    mode = im.mode
    info = dict(im.info)
    if im.width == 0 or im.height == 0:
        raise ImageError.about(name, "image is empty")

    def finish(out: Image.Image) -> Image.Image:
        out.info.update(info)
        return out

    deep = info.pop(png16.RGB16_KEY, None)
    if isinstance(deep, np.ndarray) and mode in ("RGB", "RGBA"):
        inner = _decode_array(deep, name)

        def restore_deep(out: np.ndarray) -> Image.Image:
            pixels = inner.restore(out)
            shown = Image.fromarray((pixels >> 8).astype(np.uint8), mode)
            shown.info[png16.RGB16_KEY] = pixels
            return finish(shown)

        return Decoded(inner.rgb, restore_deep, lambda g: Image.fromarray(inner.restore_gray(g)))
    if mode in ("RGB", "RGBA", "L", "LA"):
        arr = np.asarray(im)
        inner = _decode_array(arr, name)
        return Decoded(
            inner.rgb,
            lambda out: finish(Image.fromarray(inner.restore(out), mode)),
            lambda g: Image.fromarray(inner.restore_gray(g)),
        )
    if mode in ("I;16", "I;16B", "I;16L"):
        arr = np.asarray(im.convert("I")).astype(np.uint16)
        inner = _decode_array(arr, name)

        def restore16(out: np.ndarray) -> Image.Image:
            return finish(Image.fromarray(inner.restore(out)).convert(mode))

        return Decoded(inner.rgb, restore16, lambda g: Image.fromarray(inner.restore_gray(g)))
    if mode in ("I", "F"):
        return _decode_scaled(im, name, finish)
    if mode == "P" or mode == "PA":
        has_alpha = "transparency" in info or mode == "PA"
        rgb_mode = "RGBA" if has_alpha else "RGB"
        inner = _decode_pil(im.convert(rgb_mode), name)
        palette = im

        def restore_p(out: np.ndarray) -> Image.Image:
            res = inner.restore(out)
            if has_alpha:  # quantize cannot keep an alpha channel; keep the result in RGBA
                return finish(res)
            return finish(res.quantize(palette=palette, dither=Image.Dither.NONE))

        return Decoded(inner.rgb, restore_p, inner.restore_gray)
    if mode in ("CMYK", "YCbCr", "LAB", "HSV", "1", "RGBX", "RGBa", "La"):
        target = (
            "L" if mode == "1" else "RGBA" if mode in ("RGBa",) else "LA" if mode == "La" else "RGB"
        )
        inner = _decode_pil(im.convert(target), name)
        return Decoded(
            inner.rgb,
            lambda out: finish(inner.restore(out).convert(mode)),
            inner.restore_gray,
        )
    raise ImageError.about(name, f"unsupported image mode {mode}")


def gray_range(arr: np.ndarray, mode: str) -> tuple[float, float]:
    """The values that map to black and white in a one-channel image of ``mode``.

    8-bit modes span 0..255 and 16-bit modes 0..65535; a float (``F``) image in [0, 1] spans
    [0, 1] and a 32-bit integer (``I``) image inside 0..65535 spans that. Anything wider spans
    its own minimum to maximum. Used on reading (to the network's [0, 1]) and on writing a
    deep image into an 8- or 16-bit format, so both scale alike.
    """
    if mode in ("L", "P", "1", "LA"):
        return 0.0, 255.0
    if mode.startswith("I;16"):
        return 0.0, 65535.0
    lo, hi = (float(arr.min()), float(arr.max())) if arr.size else (0.0, 1.0)
    if mode == "F" and lo >= 0.0 and hi <= 1.0:
        return 0.0, 1.0
    if mode == "I" and lo >= 0 and hi <= 65535:
        return 0.0, 65535.0
    return lo, (hi if hi > lo else lo + 1.0)


def _decode_scaled(
    im: Image.Image, name: str, finish: Callable[[Image.Image], Image.Image]
) -> Decoded:
    """32-bit integer or float images: map their value range to [0, 1] and back."""
    mode = im.mode
    arr = np.asarray(im)
    if not np.isfinite(arr).all():  # checked before the cast: a signalling NaN would warn there
        raise ImageError.about(name, "image contains NaN or infinity")
    arr = arr.astype(np.float64)
    lo, hi = gray_range(arr, mode)
    span = hi - lo
    gray = ((arr - lo) / span).astype(np.float32)
    rgb = np.ascontiguousarray(np.repeat(gray[:, :, None], 3, axis=2))

    def restore(out: np.ndarray) -> Image.Image:
        g = np.clip(out.mean(axis=2), 0.0, 1.0).astype(np.float64) * span + lo
        if mode == "I":
            return finish(Image.fromarray(np.rint(g).astype(np.int32), "I"))
        return finish(Image.fromarray(g.astype(np.float32), "F"))

    def restore_gray(g: np.ndarray) -> Image.Image:
        return Image.fromarray(np.rint(np.clip(g, 0, 1) * 255).astype(np.uint8))

    return Decoded(rgb, restore, restore_gray)
