"""Training settings as one frozen dataclass, and named recipes that fill it in."""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from dataclasses import dataclass
from typing import Any

from ..errors import SettingError

__all__ = [
    "RECIPES",
    "TeacherRecipe",
    "TrainConfig",
    "apply_overrides",
    "check_settings",
    "get_recipe",
    "lr_at",
    "parse_duration",
    "teacher_recipe",
]


@dataclass(frozen=True)
class TrainConfig:
    """Everything a training run needs. Defaults are the paper's recipe (IJCAI 2022, §3.1).

    Attributes:
        data: paired folder (``input/``+``target/`` or ``rain/``+``norain/``) or, with
            ``synthetic``, a folder of clean photos.
        synthetic: rain preset (``wide``, ``real``, ``light``, ``heavy``, ``mix``) to synthesise
            pairs on the fly; ``wide`` (domain-randomised) is what the shipped weights train
            on; ``real`` is ``wide`` with real-look rain on top of half the images.
        val: paired folder scored every ``val_every`` steps with the paper's protocol; several
            folders joined by ``os.pathsep`` (``:`` on Linux) are each scored and logged, and
            their mean picks the best weights.
        out: run folder (checkpoints, CSV log, curves, samples).
        model: registry variant to train.
        init: weights to start from (a fine-tune); anything ``Deraining`` accepts.
        epochs, steps: length of the run; ``steps`` wins when set.
        zoom_out: each crop's window is drawn up to this many times larger than ``crop`` and
            shrunk to it, so the photos' texture is seen at several scales (more varied
            backgrounds from the same photos); 1 turns it off.
        schedule: ``step`` (× ``lr_gamma`` every ``lr_step_epochs``) or ``cosine``.
        ema_decay: exponential moving average of the weights (0 turns it off); the EMA model
            is the one validated and exported.
        rain_left_weight: weight of :func:`~derain.train.losses.rain_left`, a term not in the
            paper that makes rain left in the output cost more than rain removed too eagerly;
            0 (the default) is the paper's loss.
        rain_left_on: the crops of each batch the ``rain_left`` term is measured on: ``all``
            (the default), or with ``unlabelled`` only the ``synthetic`` pairs or only the
            ``unlabelled`` photos, where the teacher's rain layer (photo − target) says
            where the rain is.
        unlabelled: a folder of real rainy photos without ground truth, for distillation: a
            share of every batch is crops of these photos, with the teacher's output on the
            same crop as the target (:mod:`derain.train.teacher`); ``None`` turns it off.
        teacher: the model whose outputs are the unlabelled photos' targets.
        unlabelled_share: the share of each batch taken from the unlabelled photos (rounded
            to whole crops; at least one crop of each kind).
        teacher_passes, teacher_rain_scale, teacher_flips, teacher_streaks_only: how a
            target is made from the teacher (:class:`TeacherRecipe`):
            run it this many times, subtract its rain layer this many times, average it over
            the four mirror images, scale only the layer's streaks.
        unlabelled_upright: turn unlabelled crops only in the ways that keep rain upright
            (none, 180°, the two mirror images); ``False`` draws all 8 flips/rotations.
        teacher_cache: where the teacher's outputs are kept; ``None`` is
            ``$XDG_CACHE_HOME/derain/teacher`` (``~/.cache/derain/teacher``).
        identity_init: zero the two output convolutions so the untrained network returns its
            input, which shortens the start of a small-budget run.
        data_device: where synthetic batches are made: ``host`` (NumPy rain in DataLoader
            workers, the path every earlier run used), ``device`` (photos, crops and rain on
            the training device, :class:`~derain.train.data.DeviceBatches`) or ``auto``
            (``device`` on CUDA, ``host`` elsewhere).
        time_budget: seconds the whole run may take (set-up, steps, final checkpoint and
            export); the step rate is measured after a warm-up and the schedule is fitted to
            the steps that fit, which replaces ``steps``/``epochs``.
        compile: run the model through ``torch.compile`` (opt-in: see docs/training.md).
    """

    data: str = ""
    synthetic: str | None = None
    val: str | None = None
    out: str = "runs/danet"
    model: str = "danet"
    init: str | None = None
    seed: int = 0
    epochs: int = 500
    steps: int | None = None
    batch_size: int = 16
    crop: int = 128
    zoom_out: float = 1.0
    lr: float = 4e-4
    schedule: str = "step"
    lr_step_epochs: int = 80
    lr_gamma: float = 0.8
    warmup_steps: int = 0
    min_lr: float = 1e-6
    weight_decay: float = 0.0
    grad_clip: float = 0.0
    ema_decay: float = 0.0
    charbonnier_eps: float = 1e-3
    ssim_weight: float = -0.15
    lambda_rsn: float = 1.0
    rain_left_weight: float = 0.0
    rain_left_on: str = "all"
    unlabelled: str | None = None
    teacher: str = "danet-plus"
    unlabelled_share: float = 0.5
    teacher_passes: int = 1
    teacher_rain_scale: float = 1.0
    teacher_flips: bool = False
    teacher_streaks_only: bool = False
    teacher_cache: str | None = None
    unlabelled_upright: bool = True
    identity_init: bool = False
    workers: int = 4
    val_every: int = 500
    val_max_images: int | None = None
    ckpt_every: int = 100
    log_every: int = 10
    amp: bool = True
    threads: int | None = None
    data_device: str = "auto"
    time_budget: float | None = None
    compile: bool = False


RECIPES: dict[str, dict[str, Any]] = {
    # The paper: Adam 4e-4, ×0.8 every 80 epochs, 500 epochs, batch 16, 128² crops.
    "paper": {},
    # A few thousand steps on a laptop-class CPU: smaller batches give more updates per hour,
    # cosine decay and an EMA of the weights give the best model a short run can reach.
    "cpu": {
        "steps": 6000,
        "batch_size": 8,
        "lr": 5e-4,
        "schedule": "cosine",
        "warmup_steps": 100,
        "ema_decay": 0.999,
        "identity_init": True,
        "grad_clip": 1.0,
        "workers": 1,
        "val_every": 250,
        "ckpt_every": 50,
    },
}
# Continuing from trained weights (with ``--init``): a fresh optimiser, so a short warm-up,
# and a lower peak than a start from scratch, so the first steps do not undo what the
# weights already know; the cosine then decays to the end of this run's planned steps.
RECIPES["cpu-continue"] = RECIPES["cpu"] | {
    "steps": 4200,
    "lr": 3e-4,
    "warmup_steps": 50,
    "identity_init": False,
}


def get_recipe(name: str) -> TrainConfig:
    """The :class:`TrainConfig` of a named recipe (``paper``, ``cpu`` or ``cpu-continue``)."""
    if name not in RECIPES:
        raise ValueError(f"unknown recipe {name!r}; known recipes: {', '.join(RECIPES)}")
    return TrainConfig(**RECIPES[name])


def _parse(field: dataclasses.Field[Any], text: str) -> Any:
    hints = typing.get_type_hints(TrainConfig)
    kind = hints[field.name]
    options = typing.get_args(kind) if isinstance(kind, types.UnionType) else (kind,)
    if type(None) in options and text.lower() in ("none", "null", ""):
        return None
    base = next(t for t in options if t is not type(None))
    if base is bool:
        if text.lower() in ("1", "true", "yes", "on"):
            return True
        if text.lower() in ("0", "false", "no", "off"):
            return False
        raise ValueError(f"{field.name}: expected true or false, got {text!r}")
    try:
        return base(text)
    except ValueError:
        kind_name = {int: "a whole number", float: "a number"}.get(base, base.__name__)
        raise ValueError(f"{field.name}: expected {kind_name}, got {text!r}") from None


def apply_overrides(cfg: TrainConfig, overrides: dict[str, Any] | list[str]) -> TrainConfig:
    """Replace fields of ``cfg``: a dict of values, or ``key=value`` strings from a command line."""
    fields = {f.name: f for f in dataclasses.fields(TrainConfig)}
    values: dict[str, Any] = {}
    items = (
        overrides.items()
        if isinstance(overrides, dict)
        else (tuple(s.split("=", 1)) if "=" in s else (s, None) for s in overrides)
    )
    for key, value in items:
        name = str(key).replace("-", "_")
        if name not in fields:
            raise ValueError(f"unknown setting {key!r}; known settings: {', '.join(fields)}")
        if value is None and not isinstance(overrides, dict):
            raise ValueError(f"setting {key!r} needs a value: {key}=VALUE")
        values[name] = _parse(fields[name], value) if isinstance(value, str) else value
    return dataclasses.replace(cfg, **values)


SCHEDULES = ("step", "cosine")
DATA_DEVICES = ("auto", "host", "device")
#: The parts of a batch the ``rain_left`` term can be measured on.
RAIN_LEFT_ON = ("all", "synthetic", "unlabelled")


@dataclass(frozen=True)
class TeacherRecipe:
    """How a distillation target is made from the teacher (:mod:`derain.train.teacher`):
    run it ``passes`` times, subtract its rain layer ``rain_scale`` times, average it over the
    four mirror images (``flips``), scale only the layer's streaks (``streaks_only``)."""

    passes: int = 1
    rain_scale: float = 1.0
    flips: bool = False
    streaks_only: bool = False

    def __post_init__(self) -> None:
        if not 1 <= self.passes <= 8:
            raise SettingError(f"teacher_passes {self.passes}: use 1 to 8")
        if not 0 < self.rain_scale <= 4:  # also refuses NaN
            raise SettingError(f"teacher_rain_scale {self.rain_scale}: use a number in (0, 4]")
        if self.streaks_only and self.rain_scale == 1.0:
            raise SettingError(
                "teacher_streaks_only scales the streaks of the rain layer: "
                "set teacher_rain_scale too (it is 1)"
            )

    @property
    def name(self) -> str:
        """The recipe's part of the cache key (empty for the plain single pass)."""
        parts = []
        if self.passes != 1:
            parts.append(f"x{self.passes}")
        if self.rain_scale != 1.0:
            parts.append(f"s{self.rain_scale:g}")
        if self.flips:
            parts.append("flips")
        if self.streaks_only:
            parts.append("streaks")
        return "-".join(parts)


def check_settings(cfg: TrainConfig) -> None:
    """Refuse, before any work, a setting that is out of range or names nothing known.

    Raises:
        SettingError: one line naming the setting, its value and what it may be.
    """
    from .synthetic import PRESETS  # the presets' module is heavy; only training needs it

    positive_ints = ("batch_size", "crop", "epochs", "val_every", "ckpt_every", "log_every")
    for name in positive_ints:
        if getattr(cfg, name) < 1:
            raise SettingError(f"{name} {getattr(cfg, name)}: must be 1 or more")
    checks: list[tuple[str, bool, str]] = [
        ("steps", cfg.steps is None or cfg.steps >= 0, "must be 0 or more"),
        ("time_budget", cfg.time_budget is None or 0 < cfg.time_budget < math.inf, "must be > 0"),
        ("lr", 0 < cfg.lr < math.inf, "must be a positive number"),
        ("min_lr", 0 <= cfg.min_lr < math.inf, "must be 0 or more"),
        ("warmup_steps", cfg.warmup_steps >= 0, "must be 0 or more"),
        ("workers", cfg.workers >= 0, "must be 0 or more"),
        ("schedule", cfg.schedule in SCHEDULES, f"use {' or '.join(SCHEDULES)}"),
        ("data_device", cfg.data_device in DATA_DEVICES, f"use one of {', '.join(DATA_DEVICES)}"),
        ("synthetic", cfg.synthetic in (None, *PRESETS), f"use one of {', '.join(PRESETS)}"),
        ("zoom_out", 1 <= cfg.zoom_out < math.inf, "must be a number from 1 (off) up"),
        ("ema_decay", 0 <= cfg.ema_decay < 1, "must be in [0, 1)"),
        ("grad_clip", 0 <= cfg.grad_clip < math.inf, "must be 0 (off) or more"),
        ("rain_left_weight", 0 <= cfg.rain_left_weight < math.inf, "must be 0 or more"),
        ("unlabelled_share", 0 < cfg.unlabelled_share < 1, "use a share between 0 and 1"),
        ("rain_left_on", cfg.rain_left_on in RAIN_LEFT_ON, f"use one of {', '.join(RAIN_LEFT_ON)}"),
        (
            "rain_left_on",
            cfg.rain_left_on == "all" or bool(cfg.unlabelled and cfg.rain_left_weight),
            "a part of the batch needs --unlabelled and rain_left_weight > 0",
        ),
    ]
    for name, ok, rule in checks:  # comparisons with NaN are False, so NaN is refused too
        if not ok:
            raise SettingError(f"{name} {getattr(cfg, name)!r}: {rule}")
    teacher_recipe(cfg)  # the teacher settings are checked where they are kept together


def teacher_recipe(cfg: TrainConfig) -> TeacherRecipe:
    """The :class:`TeacherRecipe` of ``cfg``'s ``teacher_*`` settings (checked on the way)."""
    return TeacherRecipe(
        cfg.teacher_passes, cfg.teacher_rain_scale, cfg.teacher_flips, cfg.teacher_streaks_only
    )


def lr_at(cfg: TrainConfig, step: int, total_steps: int, steps_per_epoch: int) -> float:
    """Learning rate at optimisation step ``step`` (0-based); pure, so a resume is exact."""
    if cfg.warmup_steps and step < cfg.warmup_steps:
        return cfg.lr * (step + 1) / cfg.warmup_steps
    if cfg.schedule == "step":
        epoch = step // max(1, steps_per_epoch)
        return cfg.lr * cfg.lr_gamma ** (epoch // cfg.lr_step_epochs)
    if cfg.schedule == "cosine":
        span = max(1, total_steps - cfg.warmup_steps)
        t = min(1.0, (step - cfg.warmup_steps) / span)
        return cfg.min_lr + 0.5 * (cfg.lr - cfg.min_lr) * (1 + math.cos(math.pi * t))
    raise ValueError(f"unknown schedule {cfg.schedule!r}; use step or cosine")


_UNITS = {"s": 1.0, "m": 60.0, "h": 3600.0}


def parse_duration(text: str) -> float:
    """Seconds in ``90``, ``90s``, ``8m`` or ``1.5h``.

    Raises:
        ValueError: not a positive number with an optional s, m or h.

    Example:
        >>> parse_duration("8m")
        480.0
    """
    value = text.strip().lower()
    scale = _UNITS.get(value[-1:])
    number = value[:-1] if scale else value
    try:
        seconds = float(number) * (scale or 1.0)
    except ValueError:
        seconds = float("nan")
    if not 0 < seconds < float("inf"):
        raise ValueError(f"time budget {text!r}: expected a duration such as 90s, 8m or 1.5h")
    return seconds
