"""The benchmark timers wait for the device: a CUDA call returns before its kernels finish."""

from __future__ import annotations

import sys

import pytest
import torch
from places import ROOT

sys.path.insert(0, str(ROOT / "benchmarks"))
import _common

LAUNCH_S = 0.001  # host time to queue the kernels of one call
WORK_S = 0.050  # device time those kernels take


class DeviceClock:
    """A stand-in for a GPU: calls queue work that only ``synchronize`` waits for."""

    def __init__(self) -> None:
        self.now = 0.0
        self.queued = 0.0

    def perf_counter(self) -> float:
        return self.now

    def launch(self) -> None:
        self.now += LAUNCH_S
        self.queued += WORK_S

    def synchronize(self, device: object = None) -> None:
        self.now += self.queued
        self.queued = 0.0


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> DeviceClock:
    fake = DeviceClock()
    monkeypatch.setattr(_common.time, "perf_counter", fake.perf_counter)
    monkeypatch.setattr(torch.cuda, "synchronize", fake.synchronize)
    return fake


def test_interleaved_timer_counts_the_device_work(clock: DeviceClock) -> None:
    times = _common.time_interleaved(
        {"a": clock.launch, "b": clock.launch}, torch.device("cuda"), warmup=2, runs=5
    )
    for t in times.values():
        assert t["median_s"] == pytest.approx(LAUNCH_S + WORK_S)
        assert t["max_s"] == pytest.approx(LAUNCH_S + WORK_S)  # warm-ups' work not counted


def test_run_timer_counts_the_device_work(clock: DeviceClock) -> None:
    t = _common.time_runs(clock.launch, torch.device("cuda"), warmup=2, runs=5)
    assert t["median_s"] == pytest.approx(LAUNCH_S + WORK_S)
    assert t["max_s"] == pytest.approx(LAUNCH_S + WORK_S)


def test_cpu_timers_never_touch_cuda(clock: DeviceClock) -> None:
    times = _common.time_interleaved({"a": clock.launch}, torch.device("cpu"), 0, 3)
    assert times["a"]["median_s"] == pytest.approx(LAUNCH_S)
