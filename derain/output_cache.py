"""A model's outputs on photo files, kept on disk per (weights, precision, photo).

Scoring a model on a folder of real photos and distilling from a teacher both run one model
once per photo and want to pay for it once: a rerun, a resume or a second model reads the
stored output. An output is found again by the digest of the network's tensors, the compute
precision and the photo file's own digest (and, for a derived output, the name of the
recipe that made it), so other weights, another precision or an edited photo never match.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Callable
from pathlib import Path

from PIL import Image

from .atomic import atomic_write
from .engines.precision import precision_name
from .inference import Deraining
from .io.imaging import open_image
from .io.writing import write_image_atomic

__all__ = ["CachedRunner", "default_cache_dir", "file_sha256"]

#: Hex digits of the weights digest in a cache folder's name, and of a photo's in a file's.
_WEIGHTS_DIGITS, _PHOTO_DIGITS = 16, 12


def default_cache_dir(kind: str) -> Path:
    """``$XDG_CACHE_HOME/derain/<kind>``, or ``~/.cache/derain/<kind>``."""
    root = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(root) / "derain" / kind


def file_sha256(path: str | Path) -> str:
    """Hex sha256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


class CachedRunner:
    """``runner``'s outputs, read from ``cache`` when these weights already made them.

    Args:
        runner: the model.
        cache: the cache's root folder; ``None`` runs every time.
        make: what to compute from the runner and the decoded RGB photo (default: one
            ``runner.run``); a different ``make`` needs its own ``recipe`` name.
        recipe: names ``make`` in the cache key (empty for the plain output).

    The outputs of one model live in ``<cache>/<weights digest>-<precision>[-<recipe>]/``, one
    PNG per photo named ``<stem>-<photo digest>.png``.
    """

    def __init__(
        self,
        runner: Deraining,
        cache: Path | None,
        make: Callable[[Deraining, Image.Image], Image.Image] | None = None,
        recipe: str = "",
    ) -> None:
        self.runner = runner
        self.precision = precision_name(runner.dtype)
        self.key = f"{runner.weights_sha256[:_WEIGHTS_DIGITS]}-{self.precision}"
        if recipe:
            self.key += f"-{recipe}"
        self.folder = cache / self.key if cache is not None else None
        self._make = make or (lambda r, image: r.run(image))

    def path_for(self, photo: Path, photo_sha: str | None = None) -> Path | None:
        """Where the output of ``photo`` is (or will be) kept; ``None`` without a cache."""
        if self.folder is None:
            return None
        sha = photo_sha or file_sha256(photo)
        return self.folder / f"{photo.stem}-{sha[:_PHOTO_DIGITS]}.png"

    def is_cached(self, photo: Path, photo_sha: str | None = None) -> bool:
        """Whether the output of ``photo`` is in the cache."""
        path = self.path_for(photo, photo_sha)
        return path is not None and path.is_file()

    def seconds(self, photo: Path, photo_sha: str | None = None) -> float | None:
        """How long making the cached output of ``photo`` took, when it was recorded."""
        path = self.path_for(photo, photo_sha)
        if path is None:
            return None
        try:
            return float(json.loads(path.with_suffix(".json").read_text())["seconds"])
        except (OSError, ValueError, KeyError, TypeError):  # not recorded, or unreadable
            return None

    def run(
        self, photo: Path, image: Image.Image | None = None, photo_sha: str | None = None
    ) -> Image.Image:
        """The output for the photo file ``photo`` (decoded as ``image``, if given)."""
        rgb = image if image is not None else open_image(photo).convert("RGB")
        path = self.path_for(photo, photo_sha)
        if path is not None and path.is_file():
            return open_image(path).convert("RGB")
        tick = time.perf_counter()
        out = self._make(self.runner, rgb)
        if path is not None:
            took = json.dumps({"seconds": round(time.perf_counter() - tick, 4)})
            write_image_atomic(out, path)
            atomic_write(path.with_suffix(".json"), lambda tmp: tmp.write_text(took + "\n"))
        return out

    def ensure(self, photo: Path) -> Path:
        """The cached output file of ``photo``, made if missing (a cache is needed)."""
        path = self.path_for(photo)
        if path is None:
            raise ValueError("ensure() needs a cache folder")
        if not path.is_file():
            self.run(photo)
        return path
