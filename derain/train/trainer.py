"""The training loop: one function, driven by a :class:`TrainConfig`."""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import json
import math
import os
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import numpy as np
import torch
from torch.utils.data import DataLoader

from ..engines.devices import resolve_device
from ..engines.precision import cpu_has_native_bf16
from ..errors import SettingError, TrainingError
from ..inference import Deraining
from ..models.danet import DANet
from ..models.sources import create_model, resolve_model
from ..models.weight_files import save_pretrained
from ..output_cache import default_cache_dir
from ..scoring.evaluate import Scored, evaluate
from ..scoring.pairs import find_pairs
from .checkpoint import load_checkpoint, save_checkpoint
from .data import (
    DataError,
    DeviceBatches,
    MixedCrops,
    MixedSampler,
    PairedCrops,
    StepSampler,
    SyntheticCrops,
    build_dataset,
    checked_images,
    part_rows,
)
from .distributed import Dist, init_distributed
from .interrupts import Interrupts
from .losses import DANetLoss, LossTerms
from .recipes import TrainConfig, check_settings, lr_at, teacher_recipe
from .report import CsvLog, plot_curves, sample_grid
from .teacher import teacher_targets

__all__ = ["OptimStep", "TrainResult", "train"]

LAST = "last.safetensors"
BEST_DIR = "best"
LOG_COLUMNS = ("step", "lr", "loss", "ssim", "sec_per_step", "val_psnr", "val_ssim")
#: Columns after the per-set ones, so logs written before they existed still line up.
RATE_COLUMNS = ("crops", "crops_per_s")
VAL_SAMPLES = 4
#: A time-budgeted run's provisional length until its plan (no step count was asked for).
UNPLANNED_STEPS = 10**12
#: Added to the seed for the unlabelled photos' own permutations and crops.
UNLABELLED_SEED_OFFSET = 7919
TEACHER_FILE = "teacher.json"


@dataclass(frozen=True)
class TrainResult:
    """Where a run ended."""

    run_dir: Path
    step: int
    best_psnr: float | None
    best_ssim: float | None
    exported: Path | None


class OptimStep:
    """One optimisation step: forward (autocast), loss, backward, clip, update.

    Mixed precision is bf16 where the GPU has it (no loss scaling needed), else fp16 with a
    gradient scaler; on a CPU with native bf16 (AVX512-BF16, AMX) the forward pass runs in
    bf16 autocast, elsewhere on the CPU everything stays float32. The loss is always fp32.
    """

    def __init__(
        self,
        net: torch.nn.Module,
        optimizer: torch.optim.Optimizer,
        criterion: DANetLoss,
        device: torch.device,
        amp: bool = True,
        grad_clip: float = 0.0,
    ) -> None:
        self.net, self.optimizer, self.criterion = net, optimizer, criterion
        self.grad_clip = grad_clip
        self.device_type = device.type
        if device.type == "cuda":
            self.use_amp = amp
            bf16 = amp and torch.cuda.is_bf16_supported()
        else:
            self.use_amp = bf16 = amp and device.type == "cpu" and cpu_has_native_bf16()
        self.amp_dtype = torch.bfloat16 if bf16 else torch.float16
        use_scaler = self.use_amp and not bf16 and device.type == "cuda"
        self.scaler = torch.amp.GradScaler("cuda", enabled=use_scaler)

    def __call__(self, rainy: torch.Tensor, clean: torch.Tensor) -> LossTerms:
        autocast = (
            torch.autocast(self.device_type, self.amp_dtype)
            if self.use_amp
            else contextlib.nullcontext()
        )
        with autocast:
            out = self.net(rainy)
        terms = self.criterion(out, clean, rainy)  # the loss casts to fp32
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(terms.total).backward()
        if self.grad_clip:
            self.scaler.unscale_(self.optimizer)
            torch.nn.utils.clip_grad_norm_(self.net.parameters(), self.grad_clip)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        return terms


def _worker_init(_: int) -> None:
    torch.set_num_threads(1)  # the loader's processes must not compete with the model's threads


def _identity_init(model: DANet) -> None:
    with torch.no_grad():
        model.dsn_out.weight.zero_()
        model.rsn_out.weight.zero_()


def _load_init(model: DANet, source: str) -> None:
    donor, _ = resolve_model(source)
    if donor.cfg != model.cfg:
        raise TrainingError.about(source, f"weights are for {donor.cfg}, not {model.cfg}")
    model.load_state_dict(donor.state_dict())


@torch.no_grad()
def _ema_update(
    ema: tuple[torch.Tensor, ...], params: tuple[torch.Tensor, ...], decay: float, step: int
) -> None:
    """One EMA step over all tensors at once (a few fused kernels on the device)."""
    # Warm-up of the decay, so early EMA weights are not dominated by the random init.
    d = min(decay, (1 + step) / (10 + step))
    torch._foreach_lerp_(ema, params, 1.0 - d)


def _sync(device: torch.device) -> None:
    """Wait for the device (only where a time is measured: the step-rate measurement)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


#: Steps run before the step rate is measured (allocator, autotuning, compilation).
RATE_WARMUP_STEPS = 5
#: The measurement lasts at least this many steps and this share of the budget (≤ 15 s).
RATE_MIN_STEPS = 10
RATE_SHARE, RATE_MAX_S = 0.03, 15.0
#: Kept back from the budget for the end (final checkpoint, curves, export): this share of
#: the budget plus twice a save timed after the second step; and the slower of the planned
#: and the last step's time, times this margin.
TAIL_SHARE, STEP_MARGIN = 0.02, 1.5


@dataclass
class TimeBudget:
    """Fits a run to a wall-clock budget: warm up, measure the steady step rate, plan once.

    The plan sets the schedule's total to the steps that fit before the deadline (less the
    time the end needs); after it, a guard ends the run early if steps turn out slower.
    """

    deadline: float  # time.perf_counter() at which the whole run must be over
    budget: float
    sec_per_step: float | None = None
    reserve: float = 0.0
    _mark: tuple[int, float] | None = None
    _last: float = 0.0  # when the previous step ended

    def after_step(self, run: _Run) -> None:
        """Measure, plan or guard, after ``run.step`` has been counted."""
        done = run.step - run.start
        if done in (1, 2):  # what the end costs (checkpoint, curves, export), known early;
            tick = time.perf_counter()  # the first save also pays one-time imports
            run.save()
            self.reserve = TAIL_SHARE * self.budget + 2 * (time.perf_counter() - tick)
        now = time.perf_counter()
        last_step, self._last = now - (self._last or now), now
        if self.sec_per_step is None:
            if done == RATE_WARMUP_STEPS:
                _sync(run.dev)
                self._mark = (run.step, time.perf_counter())
            elif self._mark is not None:
                elapsed = time.perf_counter() - self._mark[1]
                enough_time = elapsed >= min(RATE_MAX_S, RATE_SHARE * self.budget)
                if run.step - self._mark[0] >= RATE_MIN_STEPS and enough_time:
                    _sync(run.dev)
                    elapsed = time.perf_counter() - self._mark[1]
                    self._plan(run, elapsed / (run.step - self._mark[0]))
                    return
        elif now + STEP_MARGIN * max(self.sec_per_step, last_step) > self.deadline - self.reserve:
            if run.step < run.end:
                run.log(f"step {run.step}: out of time, stopping {run.end - run.step} steps early")
            run.end = run.step
            return
        if time.perf_counter() > self.deadline - self.reserve:  # the warm-up alone was too long
            run.end = run.step

    def _plan(self, run: _Run, sec_per_step: float) -> None:
        self.sec_per_step = sec_per_step
        left = self.deadline - self.reserve - time.perf_counter()
        fit = run.step + max(0, int(left / sec_per_step))
        if run.fixed_total is not None:  # resumed: same schedule, as far as time allows
            run.end = max(run.step, min(fit, run.fixed_total, run.stop_at or fit))
        else:
            cap = run.cfg.steps if run.cfg.steps is not None else fit
            run.total = run.end = max(run.step, min(fit, cap, run.stop_at or fit))
        run.log(
            f"time budget: {sec_per_step:.3f} s/step steady "
            f"({run.crops_per_step / sec_per_step:.1f} crops/s) -> schedule of {run.total} steps"
        )
        run.checkpoint()  # a resumable point that records the planned total
        self._last = time.perf_counter()


def val_folders(val: str | None) -> list[str]:
    """The folders of a ``val`` setting: one path, or several joined by ``os.pathsep``."""
    return [v for v in (val or "").split(os.pathsep) if v]


def val_name(folder: str) -> str:
    """A folder's column name in the log: its last path component."""
    return Path(folder).name or folder


def validate(
    model: DANet, folder: str, device: torch.device, max_images: int | None = None
) -> tuple[float, float, list[list[np.ndarray]]]:
    """Mean Y-channel PSNR/SSIM on a paired folder, and a few (rainy, derained, clean) rows.

    Scored by :func:`derain.scoring.evaluate.evaluate`, exactly as ``derain eval`` scores (whole
    images, float32); ``model`` itself is left as it was.
    """
    pairs = find_pairs(folder)
    if max_images:
        pairs = pairs[:max_images]
    if not pairs:
        raise DataError.about(folder, "no validation pairs found")
    rows: list[list[np.ndarray]] = []

    def keep(scored: Scored) -> None:
        if len(rows) < VAL_SAMPLES:
            rows.append([scored.rainy, scored.derained, scored.clean])

    runner = Deraining(model, device=str(device), dtype=torch.float32, tile=None)  # a copy
    summary = evaluate(runner, pairs, on_image=keep)
    return summary.psnr, summary.ssim, rows


def train(
    cfg: TrainConfig,
    *,
    resume: bool | str = False,
    export: str | None = None,
    device: str = "auto",
    stop_at: int | None = None,
    log: Callable[[str], None] = print,
) -> TrainResult:
    """Train (or fine-tune) a DANet as ``cfg`` says.

    Args:
        cfg: all settings; see :func:`~derain.train.recipes.get_recipe`.
        resume: continue from ``<out>/last.safetensors`` (``True``) or from a checkpoint path.
        export: write the best (or, without validation, the last) weights here as
            ``model.safetensors`` + ``config.json``.
        device: ``auto``, ``cpu``, ``cuda``…; under torchrun each process takes its local GPU.
        stop_at: leave the loop after this step (the schedule still spans the whole run).
        log: where progress lines go (rank 0 only).

    Example:
        >>> from derain.train import get_recipe, apply_overrides, train
        >>> cfg = apply_overrides(get_recipe("cpu"), {"data": "photos/", "synthetic": "light"})
        >>> train(cfg, export="my-model")  # doctest: +SKIP
    """
    started = time.perf_counter()  # a time budget counts from here
    dev = resolve_device(device)
    dist = init_distributed(dev)
    if dist.enabled and dev.type == "cuda":
        dev = torch.device("cuda", dist.local_rank)
    try:
        budget = TimeBudget(started + cfg.time_budget, cfg.time_budget) if cfg.time_budget else None
        with Interrupts() as interrupts:
            return _train(
                cfg,
                dist,
                dev,
                resume,
                export,
                stop_at,
                log if dist.is_main else _quiet,
                budget,
                interrupts,
            )
    finally:
        dist.close()


def _quiet(_: str) -> None:
    pass


@dataclass
class _Run:
    """One training run's state: made by :func:`_build`, driven by :func:`_loop`, read by
    :func:`_export`."""

    cfg: TrainConfig
    dist: Dist
    dev: torch.device
    log: Callable[[str], None]
    run_dir: Path
    images: int
    model: DANet
    ema: DANet | None
    optimizer: torch.optim.Optimizer
    stepper: OptimStep
    batches: Iterable[tuple[torch.Tensor, torch.Tensor]]
    folders: list[str]
    per_set: list[str]
    csv_log: CsvLog | None
    steps_per_epoch: int
    total: int
    start: int
    end: int
    best: dict[str, float | None]
    crops_per_step: int
    stop_at: int | None = None
    fixed_total: int | None = None  # a resumed time-budgeted run keeps its planned schedule
    budget: TimeBudget | None = None
    interrupts: Interrupts | None = None  # a Ctrl-C that Python swallowed is raised here
    step: int = 0

    @property
    def scored(self) -> DANet:
        """The weights that are validated and exported: the EMA ones when there are any."""
        return self.ema or self.model

    def checkpoint(self) -> None:
        if self.dist.is_main:
            save_checkpoint(
                self.run_dir / LAST,
                model=self.model,
                optimizer=self.optimizer,
                ema=self.ema,
                step=self.step,
                extra={
                    "best": self.best,
                    "config": dataclasses.asdict(self.cfg),
                    "total": self.total,
                },
            )

    def save(self) -> None:
        """Checkpoint, and redraw the curves from the log."""
        self.checkpoint()
        if self.csv_log is not None:
            plot_curves(self.csv_log.path, self.run_dir / "curves.png")

    def validate(self) -> dict[str, float]:
        """Score every validation set; keep the best weights; the log row's columns."""
        if not (self.folders and self.dist.is_main):
            return {}
        # Several sets: the mean over the sets (each set weighs the same) picks the best.
        cfg, best = self.cfg, self.best
        scores = [validate(self.scored, f, self.dev, cfg.val_max_images) for f in self.folders]
        psnr = float(np.mean([s[0] for s in scores]))
        ssim = float(np.mean([s[1] for s in scores]))
        if best["psnr"] is None or psnr > best["psnr"]:
            best.update(psnr=psnr, ssim=ssim)
            save_pretrained(self.scored, self.run_dir / BEST_DIR, variant=cfg.model)
        sample_grid([row for s in scores for row in s[2]], self.run_dir / "samples.png")
        detail = "".join(
            f" {val_name(f)} {s[0]:.2f}" for f, s in zip(self.folders, scores, strict=True)
        )
        self.log(
            f"step {self.step}: val PSNR {psnr:.2f} dB, SSIM {ssim:.4f} (best {best['psnr']:.2f})"
            + (f" —{detail}" if self.per_set else "")
        )
        row = {"val_psnr": round(psnr, 4), "val_ssim": round(ssim, 5)}
        return row | {c: round(s[0], 4) for c, s in zip(self.per_set, scores, strict=False)}


def _train(
    cfg: TrainConfig,
    dist: Dist,
    dev: torch.device,
    resume: bool | str,
    export: str | None,
    stop_at: int | None,
    log: Callable[[str], None],
    budget: TimeBudget | None = None,
    interrupts: Interrupts | None = None,
) -> TrainResult:
    run = _build(cfg, dist, dev, resume, stop_at, log)
    run.budget, run.interrupts = budget, interrupts
    _loop(run)
    exported = _export(run, export)
    return TrainResult(run.run_dir, run.step, run.best["psnr"], run.best["ssim"], exported)


def _build(
    cfg: TrainConfig,
    dist: Dist,
    dev: torch.device,
    resume: bool | str,
    stop_at: int | None,
    log: Callable[[str], None],
) -> _Run:
    """Check the settings, load the data, make (or resume) the model, optimiser and log."""
    _check(cfg, dist)
    run_dir = Path(cfg.out)
    dataset, unlabelled, shares = _data(cfg, dist, dev, log)
    steps_per_epoch, total = _schedule(cfg, len(dataset))
    model, ema, optimizer, criterion = _model_and_optimiser(
        cfg, dev, _rain_left_rows(cfg, shares, dist)
    )
    start, best, fixed_total = _resume(cfg, resume, run_dir, model, optimizer, ema, log)
    if fixed_total is not None:
        total = fixed_total  # the schedule the interrupted run planned
    folders, per_set, csv_log = _run_files(cfg, dist, run_dir, start)
    net = _wrapped(cfg, dist, dev, model)
    end = total if stop_at is None else min(total, stop_at)
    batches = _batches(cfg, dist, dev, dataset, unlabelled, shares, (start, end), log)
    stepper = OptimStep(net, optimizer, criterion, dev, cfg.amp, cfg.grad_clip)
    return _Run(
        cfg=cfg,
        dist=dist,
        dev=dev,
        log=log,
        run_dir=run_dir,
        images=len(dataset),
        model=model,
        ema=ema,
        optimizer=optimizer,
        stepper=stepper,
        batches=batches,
        folders=folders,
        per_set=per_set,
        csv_log=csv_log,
        steps_per_epoch=steps_per_epoch,
        total=total,
        start=start,
        end=end,
        best=best,
        crops_per_step=cfg.batch_size,
        stop_at=stop_at,
        fixed_total=fixed_total,
        step=start,
    )


def _check(cfg: TrainConfig, dist: Dist) -> None:
    """Refuse settings that cannot run (here, or over these processes); set the threads."""
    check_settings(cfg)
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    if cfg.batch_size % dist.world_size:
        raise SettingError(
            f"batch size {cfg.batch_size} is not divisible by {dist.world_size} GPUs"
        )
    if cfg.time_budget and dist.enabled:
        raise SettingError("a time budget needs one process: each would plan its own schedule")


def _data(
    cfg: TrainConfig, dist: Dist, dev: torch.device, log: Callable[[str], None]
) -> tuple[SyntheticCrops | PairedCrops, PairedCrops | None, tuple[int, int]]:
    """The training set, the unlabelled photos' pairs (if any), and each one's batch share."""
    shares = _batch_shares(cfg, dist)
    dataset = build_dataset(cfg.data, cfg.synthetic, cfg.crop, cfg.seed, cfg.zoom_out)
    unlabelled = _unlabelled_pairs(cfg, dist, dev, log) if cfg.unlabelled else None
    return dataset, unlabelled, shares


def _schedule(cfg: TrainConfig, images: int) -> tuple[int, int]:
    """Steps per epoch, and the schedule's total before any resume."""
    steps_per_epoch = math.ceil(images / cfg.batch_size)
    total = cfg.steps if cfg.steps is not None else cfg.epochs * steps_per_epoch
    if cfg.time_budget and cfg.steps is None:
        total = UNPLANNED_STEPS  # until the time budget fits the schedule (cosine near its peak)
    return steps_per_epoch, total


def _model_and_optimiser(
    cfg: TrainConfig, dev: torch.device, rain_left_rows: slice = slice(None)
) -> tuple[DANet, DANet | None, torch.optim.Optimizer, DANetLoss]:
    """The seeded model (initialised as ``cfg`` says) on ``dev``, its EMA, optimiser and loss.

    ``rain_left_rows``: the rows of each process's batch the loss's ``rain_left`` term reads.
    """
    torch.manual_seed(cfg.seed)
    model = create_model(cfg.model)
    if cfg.init:
        _load_init(model, cfg.init)
    elif cfg.identity_init:
        _identity_init(model)
    # channels_last from the start in every run, so a resumed run computes exactly the same.
    model = model.to(dev, memory_format=torch.channels_last).train()  # type: ignore[call-overload]
    ema = copy.deepcopy(model).eval().requires_grad_(False) if cfg.ema_decay > 0 else None
    # Adam (the paper's; weight decay 0 makes it AdamW too), fused into a few kernels on CUDA.
    optimizer = torch.optim.Adam(
        model.parameters(),
        lr=cfg.lr,
        weight_decay=cfg.weight_decay,
        fused=True if dev.type == "cuda" else None,
    )
    criterion = DANetLoss(
        cfg.charbonnier_eps, cfg.ssim_weight, cfg.lambda_rsn, cfg.rain_left_weight, rain_left_rows
    )
    return model, ema, optimizer, criterion


def _resume(
    cfg: TrainConfig,
    resume: bool | str,
    run_dir: Path,
    model: DANet,
    optimizer: torch.optim.Optimizer,
    ema: DANet | None,
    log: Callable[[str], None],
) -> tuple[int, dict[str, float | None], int | None]:
    """Load the checkpoint into the model, EMA and optimiser, if resuming.

    Returns the step to start from, the best scores so far, and the schedule's total that an
    interrupted time-budgeted run planned (``None``: the total is not fixed by the checkpoint).
    """
    start = 0
    best: dict[str, float | None] = {"psnr": None, "ssim": None}
    fixed_total: int | None = None
    if resume:
        ckpt = Path(resume) if isinstance(resume, str) else run_dir / LAST
        if not ckpt.is_file():
            raise TrainingError.about(ckpt, "no checkpoint to resume from")
        start, extra = load_checkpoint(ckpt, model=model, optimizer=optimizer, ema=ema)
        best = extra.get("best", best)
        planned = int(extra.get("total", UNPLANNED_STEPS))
        if cfg.time_budget and planned != UNPLANNED_STEPS:
            fixed_total = planned
        log(f"resumed from {ckpt} at step {start}")
    return start, best, fixed_total


def _run_files(
    cfg: TrainConfig, dist: Dist, run_dir: Path, start: int
) -> tuple[list[str], list[str], CsvLog | None]:
    """Write the run folder's ``config.json`` and open its log (main rank only).

    Returns the validation folders, their per-set log columns, and the log.
    """
    if dist.is_main:
        run_dir.mkdir(parents=True, exist_ok=True)
        (run_dir / "config.json").write_text(json.dumps(dataclasses.asdict(cfg), indent=2) + "\n")
    folders = val_folders(cfg.val)
    per_set = [f"psnr_{val_name(f)}" for f in folders] if len(folders) > 1 else []
    columns = (*LOG_COLUMNS, *per_set, *RATE_COLUMNS)
    csv_log = CsvLog(run_dir / "log.csv", columns) if dist.is_main else None
    if csv_log is not None:  # rows past the checkpoint (all of them in a fresh run) are stale
        csv_log.truncate_after(start)
    return folders, per_set, csv_log


def _wrapped(cfg: TrainConfig, dist: Dist, dev: torch.device, model: DANet) -> torch.nn.Module:
    """The module the steps run: ``model``, under DDP over several processes, compiled if asked."""
    net: torch.nn.Module = model
    if dist.enabled:
        net = torch.nn.parallel.DistributedDataParallel(
            model, device_ids=[dev.index] if dev.type == "cuda" else None
        )
    if cfg.compile:
        net = cast(torch.nn.Module, torch.compile(net))
    return net


def _batch_shares(cfg: TrainConfig, dist: Dist) -> tuple[int, int]:
    """Crops per batch of the synthetic pairs and of the unlabelled photos (0 without)."""
    if not cfg.unlabelled:
        return cfg.batch_size, 0
    taken = round(cfg.unlabelled_share * cfg.batch_size)
    if not 0 < taken < cfg.batch_size:
        raise SettingError(
            f"unlabelled_share {cfg.unlabelled_share} of a batch of {cfg.batch_size} leaves "
            "no crop of one kind: use a larger batch or a share nearer 0.5"
        )
    shares = (cfg.batch_size - taken, taken)
    if any(n % dist.world_size for n in shares):
        raise SettingError(
            f"the batch's {shares[0]} synthetic and {shares[1]} unlabelled crops do not split "
            f"over {dist.world_size} GPUs"
        )
    return shares


def _rain_left_rows(cfg: TrainConfig, shares: tuple[int, int], dist: Dist) -> slice:
    """The rows of each process's batch that ``cfg.rain_left_on`` names."""
    if cfg.rain_left_on == "all":
        return slice(None)
    synthetic, unlabelled = part_rows([n // dist.world_size for n in shares])
    return synthetic if cfg.rain_left_on == "synthetic" else unlabelled


def _unlabelled_pairs(
    cfg: TrainConfig, dist: Dist, dev: torch.device, log: Callable[[str], None]
) -> PairedCrops:
    """The unlabelled photos paired with their teacher targets (made once, then cached)."""
    photos = checked_images(Path(cfg.unlabelled or ""))
    recipe = teacher_recipe(cfg)
    cache = Path(cfg.teacher_cache) if cfg.teacher_cache else default_cache_dir("teacher")
    targets: list[Path] = []
    key = ""
    if dist.is_main:  # the main process fills the cache first; the others then read it
        targets, key = teacher_targets(photos, cfg.teacher, recipe, cache, str(dev), log)
    dist.barrier()
    if not dist.is_main:
        targets, key = teacher_targets(photos, cfg.teacher, recipe, cache, str(dev), log)
    log(
        f"distillation: {len(photos)} unlabelled photos, targets by {cfg.teacher} ({key}), "
        f"{cfg.unlabelled_share:g} of each batch"
    )
    if dist.is_main:
        info = {"teacher": cfg.teacher, "key": key, "photos": len(photos), "cache": str(cache)}
        Path(cfg.out).mkdir(parents=True, exist_ok=True)
        (Path(cfg.out) / TEACHER_FILE).write_text(json.dumps(info, indent=2) + "\n")
    seed = cfg.seed + UNLABELLED_SEED_OFFSET
    pairs = list(zip(photos, targets, strict=True))
    return PairedCrops(
        pairs, cfg.crop, seed, cache=True, zoom_out=cfg.zoom_out, upright=cfg.unlabelled_upright
    )


def _batches(
    cfg: TrainConfig,
    dist: Dist,
    dev: torch.device,
    dataset: SyntheticCrops | PairedCrops,
    unlabelled: PairedCrops | None,
    shares: tuple[int, int],
    steps: tuple[int, int],
    log: Callable[[str], None],
) -> Iterable[tuple[torch.Tensor, torch.Tensor]]:
    """Each step's (rainy, target) batch: on the device, or from DataLoader workers."""
    start, end = steps
    rank, world = dist.rank, dist.world_size
    sampler = StepSampler(len(dataset), shares[0], end, cfg.seed, start, rank, world)
    part = None
    if unlabelled is not None:
        extra = StepSampler(len(unlabelled), shares[1], end, unlabelled.seed, start, rank, world)
        part = (unlabelled, extra)
    on_device = cfg.data_device == "device" or (cfg.data_device == "auto" and dev.type == "cuda")
    if on_device and isinstance(dataset, SyntheticCrops):  # every preset has a batched generator
        log(f"data: {len(dataset)} photos cached on {dev}, crops and rain drawn there")
        return DeviceBatches(dataset, sampler, dev, part)
    if part is not None:
        mixed = MixedCrops([dataset, part[0]])
        return _loader(cfg, dev, mixed, MixedSampler([sampler, part[1]]))
    return _loader(cfg, dev, dataset, sampler)


def _loader(cfg: TrainConfig, dev: torch.device, dataset: Any, sampler: Any) -> DataLoader:
    return DataLoader(
        dataset,
        batch_sampler=sampler,
        num_workers=cfg.workers,
        worker_init_fn=_worker_init if cfg.workers else None,
        pin_memory=dev.type == "cuda",
        persistent_workers=False,
    )


def _loop(run: _Run) -> None:
    """Steps ``run.start`` … ``run.end``: optimise, log, validate, checkpoint.

    Nothing in a step waits for the device: the loss reaches the host only on the steps
    that log it, the EMA and the optimiser run as fused device kernels.
    """
    cfg, dev, log, csv_log = run.cfg, run.dev, run.log, run.csv_log
    planned = run.budget is None
    log(
        f"training {cfg.model} for steps {run.start}..{run.end} of {run.total} "
        f"({run.images} images)"
        if planned
        else f"training {cfg.model} from step {run.start} for {cfg.time_budget:g} s "
        f"({run.images} images)"
    )
    params = tuple(run.model.parameters())
    ema = tuple(run.ema.parameters()) if run.ema is not None else ()
    tick = time.perf_counter()
    last = (run.step, tick)
    for rainy, clean in run.batches:
        rainy = rainy.to(dev, non_blocking=True).contiguous(memory_format=torch.channels_last)
        clean = clean.to(dev, non_blocking=True)
        lr = lr_at(cfg, run.step, run.total, run.steps_per_epoch)
        for group in run.optimizer.param_groups:
            group["lr"] = lr
        terms = run.stepper(rainy, clean)
        if ema:
            _ema_update(ema, params, cfg.ema_decay, run.step)
        run.step += 1
        step = run.step
        if run.budget is not None:
            run.budget.after_step(run)
        row: dict[str, Any] = {}
        if step % cfg.log_every == 0 or step == run.end:
            loss, ssim = float(terms.total.detach()), float(terms.ssim_full)  # waits for the device
            now = time.perf_counter()
            elapsed = (now - tick) / max(1, step - run.start)
            rate = (step - last[0]) * run.crops_per_step / max(now - last[1], 1e-9)
            last = (step, now)
            row = {
                "lr": f"{lr:.3g}",
                "loss": round(loss, 5),
                "ssim": round(ssim, 4),
                "sec_per_step": round(elapsed, 3),
                "crops": step * run.crops_per_step,
                "crops_per_s": round(rate, 1),
            }
            of = f"/{run.total}" if run.total != UNPLANNED_STEPS else ""
            log(
                f"step {step}{of} loss {loss:.4f} ssim {ssim:.4f} "
                f"lr {lr:.2e} {elapsed:.2f}s/step {rate:.1f} crops/s"
            )
        if cfg.val and (step % cfg.val_every == 0 or step == run.end):
            row |= run.validate()
        if csv_log is not None and row:
            csv_log.write(step=step, **row)
        if step % cfg.ckpt_every == 0 or step == run.end:
            run.save()
        if step % cfg.ckpt_every == 0:
            run.dist.barrier()
        if run.interrupts is not None:
            run.interrupts.check()
        if step >= run.end:
            break


def _export(run: _Run, export: str | None) -> Path | None:
    """Write the best validated (else the last) weights to ``export``, on the main rank."""
    if not (export and run.dist.is_main):
        return None
    best_dir = run.run_dir / BEST_DIR
    source = resolve_model(best_dir)[0] if best_dir.is_dir() else run.scored
    exported = save_pretrained(source, export, variant=run.cfg.model, dtype=torch.float32)
    run.log(f"exported weights to {exported}")
    return exported
