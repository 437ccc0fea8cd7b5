"""``dtype="auto"``: bf16 where the CPU computes it natively, and what bf16 costs in dB."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from places import EXAMPLES, SHARED
from typer.testing import CliRunner

import derain.engines.precision
from derain import DANet, DANetConfig, DerainError, Deraining
from derain.cli import app, main
from derain.engines.precision import cpu_has_native_bf16, resolve_dtype
from derain.scoring.evaluate import evaluate
from derain.scoring.pairs import find_pairs

TINY = DANetConfig(channels=8, orb_blocks=1, stage_blocks=1)

VAL = SHARED / "data" / "val"
VAL_SETS = ("Rain12", "RainH-dev", "Rain13K-dev")
#: The most PSNR bf16 may cost against fp32 on a data set (issue 12).
MAX_BF16_COST_DB = 0.02
_ZEN4_FLAGS = "fpu sse2 avx2 fma avx512f avx512bw avx512_bf16 avx512_vnni"


def _cpuinfo(tmp_path: Path, flags: str) -> Path:
    path = tmp_path / "cpuinfo"
    path.write_text(f"processor\t: 0\nvendor_id\t: X\nflags\t\t: {flags}\n\nprocessor\t: 1\n")
    return path


@pytest.mark.parametrize(
    ("flags", "native"),
    [
        (_ZEN4_FLAGS, True),
        ("fpu avx2 avx512f avx512bw amx_tile amx_bf16 amx_int8", True),  # AMX without AVX512-BF16
        ("fpu sse2 avx2 fma avx512f avx512bw avx512_vnni", False),  # AVX-512, bf16 only emulated
        ("fpu sse2 avx2 fma", False),
        ("", False),
    ],
)
def test_native_bf16_is_read_from_the_cpu_flags(tmp_path: Path, flags: str, native: bool) -> None:
    if not torch.backends.mkldnn.is_available():
        pytest.skip("torch built without oneDNN: bf16 is never native")
    assert cpu_has_native_bf16(_cpuinfo(tmp_path, flags)) is native


def test_auto_follows_the_cpu(monkeypatch: pytest.MonkeyPatch) -> None:
    cpu = torch.device("cpu")
    monkeypatch.setattr(derain.engines.precision, "cpu_has_native_bf16", lambda: True)
    assert resolve_dtype("auto", cpu) == torch.bfloat16
    assert Deraining(DANet(TINY), device="cpu").dtype == torch.bfloat16
    monkeypatch.setattr(derain.engines.precision, "cpu_has_native_bf16", lambda: False)
    assert resolve_dtype("auto", cpu) == torch.float32
    assert Deraining(DANet(TINY), device="cpu").dtype == torch.float32
    assert resolve_dtype(None, cpu) == torch.float32
    assert resolve_dtype("auto", torch.device("cuda")) == torch.float16
    assert resolve_dtype("auto", torch.device("mps")) == torch.float32


@pytest.mark.parametrize(
    ("capability", "expected"),
    [
        ((6, 1), torch.float32),
        ((7, 0), torch.float16),
        ((8, 9), torch.float16),
        ((9, 0), torch.float16),
    ],
)
def test_auto_on_cuda_follows_the_capability(
    monkeypatch: pytest.MonkeyPatch, capability: tuple[int, int], expected: torch.dtype
) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: capability)
    assert resolve_dtype("auto", torch.device("cuda:0")) == expected
    assert resolve_dtype("fp16", torch.device("cuda:0")) == torch.float16  # asked: honoured


def test_names_and_dtypes() -> None:
    cpu = torch.device("cpu")
    assert resolve_dtype("fp32", cpu) == torch.float32
    assert resolve_dtype("BF16", cpu) == torch.bfloat16
    assert resolve_dtype("float16", cpu) == torch.float16
    assert resolve_dtype(torch.bfloat16, cpu) == torch.bfloat16
    with pytest.raises(DerainError, match="unknown precision 'int8'"):
        resolve_dtype("int8", cpu)
    with pytest.raises(DerainError, match="unsupported dtype"):
        Deraining(DANet(TINY), device="cpu", dtype=torch.float64)


def test_cli_precision_and_the_hidden_fp32_alias(model_dir: Path, tmp_path: Path) -> None:
    runner = CliRunner()
    assert "--precision" in runner.invoke(app, ["run", "--help"]).stdout
    assert "--fp32" not in runner.invoke(app, ["run", "--help"]).stdout
    image = EXAMPLES / "rocket_rain.png"
    outs = {}
    for flag in (["--precision", "fp32"], ["--fp32"], ["--precision", "bf16"]):
        out = tmp_path / f"{flag[-1]}.png"
        result = runner.invoke(
            app, ["run", str(image), "-o", str(out), "-m", str(model_dir), *flag]
        )
        assert result.exit_code == 0, result.output
        outs[flag[-1]] = out.read_bytes()
    assert outs["fp32"] == outs["--fp32"]  # the alias is fp32
    assert outs["fp32"] != outs["bf16"]  # and bf16 really computes differently


def test_unknown_precision_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["run", str(EXAMPLES / "rocket_rain.png"), "--precision", "fp8"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err == "derain: error: --precision: expected auto, fp32, bf16, fp16, got 'fp8'"


def _psnr(deraining: Deraining, pairs: list[tuple[Path, Path]]) -> float:
    return evaluate(deraining, pairs).psnr


def _bf16_cost(pairs: list[tuple[Path, Path]]) -> float:
    fp32 = _psnr(Deraining("danet", device="cpu", dtype="fp32"), pairs)
    bf16 = _psnr(Deraining("danet", device="cpu", dtype="bf16"), pairs)
    return fp32 - bf16


@pytest.mark.slow
def test_bf16_costs_at_most_0_02_db_on_the_bundled_example() -> None:
    pairs = [(EXAMPLES / "rocket_rain.png", EXAMPLES / "rocket_clean.png")]
    assert _bf16_cost(pairs) <= MAX_BF16_COST_DB


@pytest.mark.slow
@pytest.mark.shared
@pytest.mark.parametrize("name", VAL_SETS)
def test_bf16_costs_at_most_0_02_db_on_the_validation_sets(name: str) -> None:
    if not (VAL / name).is_dir():
        pytest.skip(f"../shared/data/val/{name} not present")
    cost = _bf16_cost(find_pairs(VAL / name))
    print(f"{name}: bf16 costs {cost:+.4f} dB against fp32")
    assert cost <= MAX_BF16_COST_DB
