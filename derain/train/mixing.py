"""Weight-space mixing of two trained networks of one architecture.

Every weight of the result is ``start + t · (end − start)``. With ``t`` between 0 and 1 this
averages two fine-tunes of one network (weight-space ensembling, as in WiSE-FT and model
soups; version 2 of the shipped ``danet`` was made this way); with ``t`` above 1 it
extends the step that led from ``start`` to ``end``. Both networks must share one
architecture and, to make sense, one ancestry (a fine-tune and the weights it started from).
"""

from __future__ import annotations

import copy
import math

import torch

from ..errors import WeightsError
from ..models.danet import DANet

__all__ = ["mix_models"]


def mix_models(start: DANet, end: DANet, t: float) -> DANet:
    """The network ``start + t · (end − start)``, weight by weight, in ``end``'s dtypes.

    Args:
        start: the weights at ``t = 0`` (for a fine-tune: the weights it started from).
        end: the weights at ``t = 1``; neither network is changed.
        t: where on the line: 0.5 averages, 1.5 goes half a step past ``end``.

    Returns:
        A new network (a copy of ``end``'s module with the mixed weights), in eval mode.

    Raises:
        WeightsError: the two networks differ in architecture.
        ValueError: ``t`` is not a finite number.

    Example:
        >>> a, b = DANet(), DANet()
        >>> mixed = mix_models(a, b, 0.5)
        >>> pa, pb, pm = (next(m.parameters()) for m in (a, b, mixed))
        >>> bool(torch.allclose(pm, (pa + pb) / 2))
        True
    """
    if not math.isfinite(t):
        raise ValueError(f"t must be a finite number, not {t}")
    if start.cfg != end.cfg:
        raise WeightsError(f"cannot mix two architectures: {start.cfg} and {end.cfg}")
    a, b = start.state_dict(), end.state_dict()
    mixed = {
        key: torch.lerp(a[key].float(), value.float(), t).to(value.dtype)
        if value.is_floating_point()
        else value
        for key, value in b.items()
    }
    out = copy.deepcopy(end)
    out.load_state_dict(mixed)
    return out.eval()
