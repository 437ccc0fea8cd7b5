"""Training data: paired folders or synthetic rain over clean photos, sampled by step.

Every sample is a pure function of ``(seed, epoch, index)``: the crop, the flip/rotation and the
synthetic rain are all drawn from a generator seeded with those numbers. The order of samples is
a seeded permutation per epoch. Together these make the data position of a run nothing more than
its step count, so a resumed run sees exactly the batches an uninterrupted one would, whatever
the number of worker processes or GPUs.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset, Sampler

from ..errors import ImageError, TrainingError, first_line
from ..imaging import open_image, rgb8
from ..io_files import iter_images
from ..pairs import scan_pairs
from .synthetic import RainSynthesizer
from .synthetic_torch import BatchRainSynthesizer

__all__ = [
    "DataError",
    "DeviceBatches",
    "PairedCrops",
    "StepSampler",
    "SyntheticCrops",
    "augment",
    "build_dataset",
]

MAX_REPORTED = 10


class DataError(TrainingError):
    """A training folder with problems, listed file by file before training starts."""


def _raise_problems(folder: Path, problems: list[str]) -> None:
    if problems:
        shown = problems[:MAX_REPORTED]
        more = f" (and {len(problems) - len(shown)} more)" if len(problems) > len(shown) else ""
        lines = "\n  ".join(shown)
        raise DataError(
            f"{folder}: {len(problems)} problem(s) in the training data{more}:\n  {lines}"
        )


def _size(path: Path) -> tuple[int, int]:
    """Width and height of an image file, checking that it decodes (as inference reads it)."""
    return open_image(path).size


def augment(image: np.ndarray, k: int) -> np.ndarray:
    """One of the 8 flips/rotations (dihedral group) of an H×W×C array, ``k`` in 0..7."""
    out = np.rot90(image, k % 4, axes=(0, 1))
    return out[:, ::-1] if k >= 4 else out


def _random_crop(
    images: Sequence[np.ndarray], crop: int, rng: np.random.Generator, zoom_out: float = 1.0
) -> list[np.ndarray]:
    """The same random ``crop``×``crop`` window of each image.

    With ``zoom_out`` > 1 the window is first drawn up to ``zoom_out`` times larger (its side
    log-uniform, capped by the image) and then shrunk to ``crop`` (bicubic, antialiased), so
    a photo's texture is seen at several scales. At 1 no extra number is drawn, so runs made
    before the option existed draw exactly the same crops.
    """
    h, w = images[0].shape[:2]
    side = crop
    if zoom_out > 1.0:
        # Log-uniform, so zoom 1..2 is as common as 2..4; rounded down to fit the image.
        side = min(int(crop * np.exp(rng.uniform(0.0, np.log(zoom_out)))), h, w)
    y = int(rng.integers(0, h - side + 1))
    x = int(rng.integers(0, w - side + 1))
    windows = [im[y : y + side, x : x + side] for im in images]
    if side == crop:
        return windows
    return [_shrink(win, crop) for win in windows]


def _shrink(image: np.ndarray, size: int) -> np.ndarray:
    """A uint8 square image resized down to ``size``×``size`` (PIL bicubic, antialiased)."""
    pil = Image.fromarray(image).resize((size, size), Image.Resampling.BICUBIC)
    return np.asarray(pil)


def _to_float(image: np.ndarray) -> np.ndarray:
    return image.astype(np.float32) / np.float32(255.0)


def _to_tensor(image: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1)))


class _CropDataset(Dataset):
    """Shared machinery: keys are (epoch, index); decoded images are cached per worker (uint8)."""

    def __len__(self) -> int:  # each kind of crops counts its own
        raise NotImplementedError

    def __init__(self, crop: int, seed: int, cache: bool, zoom_out: float = 1.0) -> None:
        if not 1.0 <= zoom_out < float("inf"):
            raise DataError(f"zoom_out must be a number from 1 (off) up, got {zoom_out}")
        self.crop = crop
        self.zoom_out = zoom_out
        self.seed = seed
        self.cache = cache
        self._cache: dict[Path, np.ndarray] = {}

    def _image(self, path: Path, min_side: int) -> np.ndarray:
        if not self.cache:
            return rgb8(path, min_side=min_side)
        if path not in self._cache:
            self._cache[path] = rgb8(path, min_side=min_side)
        return self._cache[path]

    def _rng(self, key: tuple[int, int]) -> np.random.Generator:
        epoch, index = key
        return np.random.default_rng([self.seed, epoch, index])


class PairedCrops(_CropDataset):
    """Aligned random crops of (rainy, clean) file pairs."""

    def __init__(
        self,
        pairs: Sequence[tuple[Path, Path]],
        crop: int,
        seed: int = 0,
        cache: bool = False,
        zoom_out: float = 1.0,
    ) -> None:
        super().__init__(crop, seed, cache, zoom_out)
        self.pairs = list(pairs)

    def __len__(self) -> int:
        return len(self.pairs)

    def __getitem__(self, key: tuple[int, int]) -> tuple[torch.Tensor, torch.Tensor]:
        rng = self._rng(key)
        rain_path, clean_path = self.pairs[key[1]]
        rainy, clean = self._image(rain_path, self.crop), self._image(clean_path, self.crop)
        windows = _random_crop([rainy, clean], self.crop, rng, self.zoom_out)
        rainy, clean = (_to_float(c) for c in windows)
        k = int(rng.integers(8))
        return _to_tensor(augment(rainy, k)), _to_tensor(augment(clean, k))

    @classmethod
    def from_folder(
        cls, root: Path, crop: int, seed: int = 0, zoom_out: float = 1.0
    ) -> PairedCrops:
        """Pair a folder and check every file before training starts."""
        scan = scan_pairs(root)
        pairs = scan.pairs
        unpaired = scan.unpaired_inputs + scan.unpaired_targets
        problems = [f"{name}: has no partner" for name in unpaired]
        for rain_path, clean_path in pairs:
            try:
                a, b = _size(rain_path), _size(clean_path)
            except ImageError as exc:
                problems.append(f"{rain_path.name}: unreadable ({first_line(exc)})")
                continue
            if a != b:
                problems.append(f"{rain_path.name}: rainy {a} and clean {b} differ in size")
        _raise_problems(root, problems)
        if not pairs:
            raise DataError(f"{root}: no image pairs found")
        return cls(pairs, crop, seed, zoom_out=zoom_out)


class SyntheticCrops(_CropDataset):
    """Random crops of clean photos with synthetic rain added on the fly."""

    def __init__(
        self,
        paths: Sequence[Path],
        crop: int,
        preset: str = "light",
        seed: int = 0,
        cache: bool = True,
        zoom_out: float = 1.0,
    ) -> None:
        super().__init__(crop, seed, cache, zoom_out)
        self.paths = list(paths)
        self.synth = RainSynthesizer(preset)

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, key: tuple[int, int]) -> tuple[torch.Tensor, torch.Tensor]:
        rng = self._rng(key)
        image = self._image(self.paths[key[1]], self.crop)
        (crop,) = _random_crop([image], self.crop, rng, self.zoom_out)
        clean = _to_float(crop)
        # Augment the clean crop before adding rain, so streaks keep their natural direction.
        clean = np.ascontiguousarray(augment(clean, int(rng.integers(8))))
        rainy = self.synth.synthesize(clean, rng)
        return _to_tensor(rainy), _to_tensor(clean)

    @classmethod
    def from_folder(
        cls, root: Path, crop: int, preset: str, seed: int = 0, zoom_out: float = 1.0
    ) -> SyntheticCrops:
        """Collect clean photos and check each before training starts."""
        paths = sorted(iter_images(root, recursive=True))
        problems = []
        for path in paths:
            try:
                _size(path)
            except ImageError as exc:
                problems.append(f"{path.name}: unreadable ({first_line(exc)})")
        _raise_problems(root, problems)
        if not paths:
            raise DataError(f"{root}: no images found")
        return cls(paths, crop, preset, seed, zoom_out=zoom_out)


def build_dataset(
    data: str, synthetic: str | None, crop: int, seed: int, zoom_out: float = 1.0
) -> _CropDataset:
    """The dataset a :class:`~derain.train.recipes.TrainConfig` asks for."""
    root = Path(data)
    if not root.is_dir():
        raise DataError(f"{data}: training data folder not found")
    if synthetic:
        return SyntheticCrops.from_folder(root, crop, synthetic, seed, zoom_out)
    return PairedCrops.from_folder(root, crop, seed, zoom_out)


@dataclass
class StepSampler(Sampler[list[tuple[int, int]]]):
    """Yields the batches of steps ``start_step`` … ``total_steps - 1`` for one rank.

    The global batch of a step is ``batch_size`` consecutive positions in the stream of
    per-epoch permutations; with several ranks each takes every ``world_size``-th sample of it,
    which is what a distributed sampler does, without any state to save.
    """

    num_samples: int
    batch_size: int
    total_steps: int
    seed: int = 0
    start_step: int = 0
    rank: int = 0
    world_size: int = 1

    def _perm(self, epoch: int) -> list[int]:
        g = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
        return torch.randperm(self.num_samples, generator=g).tolist()

    def __iter__(self) -> Iterator[list[tuple[int, int]]]:
        n = self.num_samples
        cached: tuple[int, list[int]] = (-1, [])
        for step in range(self.start_step, self.total_steps):
            batch = []
            for pos in range(step * self.batch_size, (step + 1) * self.batch_size):
                epoch, i = divmod(pos, n)
                if cached[0] != epoch:
                    cached = (epoch, self._perm(epoch))
                batch.append((epoch, cached[1][i]))
            yield batch[self.rank :: self.world_size]

    def __len__(self) -> int:
        return max(0, self.total_steps - self.start_step)


class DeviceBatches:
    """Synthetic batches made on the training device: no worker processes, no copies.

    The clean photos are decoded once and held on ``device`` as uint8 (C, H, W) tensors
    (883 photos of at most 1024 px take about 2 GB). Each step's samples are the ones
    :class:`StepSampler` names; each sample's window, zoom-out and flip/rotation are drawn
    on the host from a generator seeded with ``(seed, epoch, index)`` (a few numbers, sent
    with the kernel launches, nothing read back), then cut, shrunk and turned on the device,
    and the whole batch gets its rain from :class:`BatchRainSynthesizer` with a device
    generator seeded by ``(seed, step, rank)``. A run's data is again a function of its
    step, so a resume sees the batches an uninterrupted run would (on the same device type:
    these batches are not the NumPy path's, which draws other random numbers).

    Args:
        dataset: the checked photos (their paths, crop, preset, seed and zoom-out are used).
        sampler: which (epoch, index) samples each step takes.
        device: where the photos, crops and rain live.
    """

    def __init__(self, dataset: SyntheticCrops, sampler: StepSampler, device: torch.device):
        self.crop, self.zoom_out, self.seed = dataset.crop, dataset.zoom_out, dataset.seed
        self.sampler, self.device = sampler, device
        self.synth = BatchRainSynthesizer(dataset.synth.params)
        with ThreadPoolExecutor() as pool:  # Pillow decodes outside the GIL
            decoded = pool.map(functools.partial(rgb8, min_side=dataset.crop), dataset.paths)
            self.photos = [_to_tensor(pixels).to(device) for pixels in decoded]
        self.gen = torch.Generator(device=device)

    def __len__(self) -> int:
        return len(self.sampler)

    def clean_crop(self, key: tuple[int, int]) -> torch.Tensor:
        """The float (3, crop, crop) clean crop of one sample, on the device."""
        epoch, index = key
        rng = np.random.default_rng([self.seed, epoch, index])
        photo = self.photos[index]
        h, w = photo.shape[1:]
        side = self.crop
        if self.zoom_out > 1.0:  # as _random_crop draws it
            side = min(int(self.crop * np.exp(rng.uniform(0.0, np.log(self.zoom_out)))), h, w)
        y = int(rng.integers(0, h - side + 1))
        x = int(rng.integers(0, w - side + 1))
        window = photo[:, y : y + side, x : x + side].float()
        if side != self.crop:
            window = torch.nn.functional.interpolate(
                window[None], size=(self.crop, self.crop), mode="bicubic", antialias=True
            )[0].clamp_(0, 255)
        k = int(rng.integers(8))
        window = torch.rot90(window, k % 4, dims=(1, 2))  # as augment() turns an H×W×C array
        return (window.flip(2) if k >= 4 else window) / 255.0

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        for step, keys in enumerate(self.sampler, start=self.sampler.start_step):
            clean = torch.stack([self.clean_crop(key) for key in keys])
            state = np.random.SeedSequence([self.seed, step, self.sampler.rank]).generate_state(1)
            self.gen.manual_seed(int(state[0]))
            yield self.synth(clean, self.gen), clean
