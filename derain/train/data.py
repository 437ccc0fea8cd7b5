"""Training data: paired folders or synthetic rain over clean photos, sampled by step.

Every sample is a pure function of ``(seed, epoch, index)``: the crop, the flip/rotation and the
synthetic rain are all drawn from a generator seeded with those numbers. The order of samples is
a seeded permutation per epoch. Together these make the data position of a run nothing more than
its step count, so a resumed run sees exactly the batches an uninterrupted one would, whatever
the number of worker processes or GPUs.
"""

from __future__ import annotations

import functools
import itertools
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset, Sampler

from ..errors import ImageError, TrainingError, first_line
from ..io.discovery import iter_images
from ..io.imaging import open_image, rgb8
from ..scoring.pairs import scan_pairs
from .synthetic import RainSynthesizer
from .synthetic_torch import BatchRainSynthesizer

__all__ = [
    "DataError",
    "DeviceBatches",
    "MixedCrops",
    "MixedSampler",
    "PairedCrops",
    "StepSampler",
    "SyntheticCrops",
    "augment",
    "build_dataset",
    "checked_images",
    "part_rows",
]

MAX_REPORTED = 10
#: The flips/rotations (``augment``'s k) that keep a streak upright: none, 180°, and the two
#: mirror images. Real rain cannot be taken off a photo and put back upright after a turn, as
#: synthetic rain is, so unlabelled photos are only turned by these (a 90° turn lays it flat).
UPRIGHT = (0, 2, 4, 6)


def _draw_turn(rng: np.random.Generator, upright: bool) -> int:
    """One ``augment`` k: any of the 8, or one of :data:`UPRIGHT`."""
    return UPRIGHT[int(rng.integers(len(UPRIGHT)))] if upright else int(rng.integers(8))


class DataError(TrainingError):
    """A training folder with problems, listed file by file before training starts."""


def _raise_problems(folder: Path, problems: list[str]) -> None:
    if problems:
        shown = problems[:MAX_REPORTED]
        more = f" (and {len(problems) - len(shown)} more)" if len(problems) > len(shown) else ""
        lines = "\n  ".join(shown)
        raise DataError.about(
            folder, f"{len(problems)} problem(s) in the training data{more}:\n  {lines}"
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
        upright: bool = False,
    ) -> None:
        super().__init__(crop, seed, cache, zoom_out)
        self.pairs = list(pairs)
        self.upright = upright

    def __len__(self) -> int:
        return len(self.pairs)

    def __getitem__(self, key: tuple[int, int]) -> tuple[torch.Tensor, torch.Tensor]:
        rng = self._rng(key)
        rain_path, clean_path = self.pairs[key[1]]
        rainy, clean = self._image(rain_path, self.crop), self._image(clean_path, self.crop)
        windows = _random_crop([rainy, clean], self.crop, rng, self.zoom_out)
        rainy, clean = (_to_float(c) for c in windows)
        k = _draw_turn(rng, self.upright)
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
            raise DataError.about(root, "no image pairs found")
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
        return cls(checked_images(root), crop, preset, seed, zoom_out=zoom_out)


def checked_images(root: Path) -> list[Path]:
    """The images under ``root``, each checked to decode, before training starts."""
    if not root.is_dir():
        raise DataError.about(root, "training data folder not found")
    paths = sorted(iter_images(root, recursive=True))
    problems = []
    for path in paths:
        try:
            _size(path)
        except ImageError as exc:
            problems.append(f"{path.name}: unreadable ({first_line(exc)})")
    _raise_problems(root, problems)
    if not paths:
        raise DataError.about(root, "no images found")
    return paths


def build_dataset(
    data: str, synthetic: str | None, crop: int, seed: int, zoom_out: float = 1.0
) -> SyntheticCrops | PairedCrops:
    """The dataset a :class:`~derain.train.recipes.TrainConfig` asks for."""
    root = Path(data)
    if not root.is_dir():
        raise DataError.about(data, "training data folder not found")
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


def part_rows(shares: Sequence[int]) -> list[slice]:
    """Where each part's crops sit in one process's batch, given each part's count there.

    The one layout of a mixed batch, on both data paths: part 0's crops first (the synthetic
    pairs), then part 1's (the unlabelled photos), as :class:`MixedSampler` and
    :class:`DeviceBatches` build it.

    >>> part_rows([3, 1])
    [slice(0, 3, None), slice(3, 4, None)]
    """
    return [slice(a, b) for a, b in itertools.pairwise(itertools.accumulate(shares, initial=0))]


class MixedCrops(Dataset):
    """Several kinds of crops in one batch: a key ``(part, epoch, index)`` names the kind.

    Distillation mixes synthetic pairs (part 0) with unlabelled photos and their teacher
    targets (part 1); :class:`MixedSampler` decides how many of each a batch holds.
    """

    def __init__(self, parts: Sequence[_CropDataset]) -> None:
        self.parts = list(parts)

    def __len__(self) -> int:
        return len(self.parts[0])

    def __getitem__(self, key: tuple[int, int, int]) -> tuple[torch.Tensor, torch.Tensor]:
        part, epoch, index = key
        return self.parts[part][(epoch, index)]


@dataclass
class MixedSampler(Sampler[list[tuple[int, int, int]]]):
    """One :class:`StepSampler` per part, walked in step: each batch is theirs side by side,
    in the order of the parts (:func:`part_rows`).

    Each part keeps its own stream of per-epoch permutations (its own seed, its own batch
    share), so a step's samples stay a pure function of the step and resumes stay exact.
    """

    samplers: Sequence[StepSampler]

    def __iter__(self) -> Iterator[list[tuple[int, int, int]]]:
        for batches in zip(*self.samplers, strict=True):
            yield [(part, *key) for part, batch in enumerate(batches) for key in batch]

    def __len__(self) -> int:
        return len(self.samplers[0])

    @property
    def start_step(self) -> int:
        return self.samplers[0].start_step


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

    With ``unlabelled`` (distillation), each batch also holds that part's samples: the same
    window and flip/rotation of a photo and its teacher target, drawn as
    :class:`PairedCrops` draws them, after the synthetic ones (:func:`part_rows`).

    Args:
        dataset: the checked photos (their paths, crop, preset, seed and zoom-out are used).
        sampler: which (epoch, index) samples each step takes.
        device: where the photos, crops and rain live.
        unlabelled: unlabelled photos and their targets, with the sampler of their share.
    """

    def __init__(
        self,
        dataset: SyntheticCrops,
        sampler: StepSampler,
        device: torch.device,
        unlabelled: tuple[PairedCrops, StepSampler] | None = None,
    ):
        self.crop, self.zoom_out, self.seed = dataset.crop, dataset.zoom_out, dataset.seed
        self.sampler, self.device = sampler, device
        self.synth = BatchRainSynthesizer(dataset.synth.params)
        self.photos = self._upload(dataset.paths, dataset.crop)
        self.unlabelled: tuple[list[torch.Tensor], list[torch.Tensor], StepSampler] | None = None
        self.unlabelled_seed, self.unlabelled_upright = 0, False
        if unlabelled is not None:
            pairs, unlabelled_sampler = unlabelled
            rainy = self._upload([p[0] for p in pairs.pairs], pairs.crop)
            targets = self._upload([p[1] for p in pairs.pairs], pairs.crop)
            self.unlabelled = (rainy, targets, unlabelled_sampler)
            self.unlabelled_seed, self.unlabelled_upright = pairs.seed, pairs.upright
        self.gen = torch.Generator(device=device)

    def _upload(self, paths: Sequence[Path], min_side: int) -> list[torch.Tensor]:
        with ThreadPoolExecutor() as pool:  # Pillow decodes outside the GIL
            decoded = pool.map(functools.partial(rgb8, min_side=min_side), paths)
            return [_to_tensor(pixels).to(self.device) for pixels in decoded]

    def __len__(self) -> int:
        return len(self.sampler)

    def crops(
        self, images: Sequence[torch.Tensor], key: tuple[int, int], seed: int, upright: bool = False
    ) -> list[torch.Tensor]:
        """The same float (3, crop, crop) window of equally sized images, on the device."""
        epoch, index = key
        rng = np.random.default_rng([seed, epoch, index])
        h, w = images[0].shape[1:]
        side = self.crop
        if self.zoom_out > 1.0:  # as _random_crop draws it
            side = min(int(self.crop * np.exp(rng.uniform(0.0, np.log(self.zoom_out)))), h, w)
        y = int(rng.integers(0, h - side + 1))
        x = int(rng.integers(0, w - side + 1))
        k = _draw_turn(rng, upright)
        out = []
        for image in images:
            window = image[:, y : y + side, x : x + side].float()
            if side != self.crop:
                window = torch.nn.functional.interpolate(
                    window[None], size=(self.crop, self.crop), mode="bicubic", antialias=True
                )[0].clamp_(0, 255)
            window = torch.rot90(window, k % 4, dims=(1, 2))  # as augment() turns H×W×C
            out.append((window.flip(2) if k >= 4 else window) / 255.0)
        return out

    def clean_crop(self, key: tuple[int, int]) -> torch.Tensor:
        """The float (3, crop, crop) clean crop of one sample, on the device."""
        return self.crops([self.photos[key[1]]], key, self.seed)[0]

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        extra = self.unlabelled[2] if self.unlabelled is not None else None
        steps = (
            zip(self.sampler, extra, strict=True)
            if extra is not None
            else ((keys, []) for keys in self.sampler)
        )
        for step, (keys, extra_keys) in enumerate(steps, start=self.sampler.start_step):
            clean = torch.stack([self.clean_crop(key) for key in keys])
            state = np.random.SeedSequence([self.seed, step, self.sampler.rank]).generate_state(1)
            self.gen.manual_seed(int(state[0]))
            rainy = self.synth(clean, self.gen)
            if self.unlabelled is not None and extra_keys:
                photos, targets, _ = self.unlabelled
                pairs = [
                    self.crops(
                        [photos[key[1]], targets[key[1]]],
                        key,
                        self.unlabelled_seed,
                        self.unlabelled_upright,
                    )
                    for key in extra_keys
                ]
                rainy = torch.cat([rainy, torch.stack([p[0] for p in pairs])])
                clean = torch.cat([clean, torch.stack([p[1] for p in pairs])])
            yield rainy, clean
