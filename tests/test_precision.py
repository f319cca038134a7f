"""How an engine's compute precision is chosen (``silkpurse.nn.engine.choose_precision``): an
explicit choice wins where it is possible; otherwise fp16 on CUDA, bf16 on CPUs with native bf16
for families that stay faithful in it, fp32 elsewhere."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn

from silkpurse.errors import OptionsError
from silkpurse.nn import engine
from silkpurse.nn.architecture import ModelDescriptor
from silkpurse.nn.engine import choose_precision
from silkpurse.plan import JobOptions
from silkpurse_cli.embedded import Pipeline, RunOptions

CPU, CUDA = torch.device("cpu"), torch.device("cuda")


def family(*, bf16_faithful: bool, fp16_safe: bool = True) -> ModelDescriptor:
    return ModelDescriptor(
        network=nn.Identity(),
        family="Test",
        kind="upscale",
        scale=1,
        in_channels=3,
        out_channels=3,
        supports_half=fp16_safe,
        supports_bf16=bf16_faithful,
        size_multiple=1,
        tiling="supported",
    )


@pytest.fixture
def native_bf16(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(engine, "cpu_has_native_bf16", lambda: True)


@pytest.fixture
def emulated_bf16(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(engine, "cpu_has_native_bf16", lambda: False)


@pytest.mark.usefixtures("native_bf16")
def test_a_cpu_with_native_bf16_runs_faithful_families_in_bf16() -> None:
    assert choose_precision(CPU, family(bf16_faithful=True)) == "bf16"


@pytest.mark.usefixtures("native_bf16")
def test_a_family_not_faithful_in_bf16_stays_fp32_and_refuses_bf16() -> None:
    assert choose_precision(CPU, family(bf16_faithful=False)) == "fp32"
    with pytest.raises(OptionsError, match="not known to give faithful results in bf16"):
        choose_precision(CPU, family(bf16_faithful=False), "bf16")


@pytest.mark.usefixtures("emulated_bf16")
def test_a_cpu_without_native_bf16_stays_fp32_and_refuses_bf16() -> None:
    assert choose_precision(CPU, family(bf16_faithful=True)) == "fp32"
    with pytest.raises(OptionsError, match="emulated"):
        choose_precision(CPU, family(bf16_faithful=True), "bf16")


@pytest.mark.usefixtures("native_bf16")
def test_an_explicit_precision_wins() -> None:
    assert choose_precision(CPU, family(bf16_faithful=True), "fp32") == "fp32"
    assert choose_precision(CUDA, family(bf16_faithful=True), "bf16") == "bf16"
    assert choose_precision(CUDA, family(bf16_faithful=True), "fp32") == "fp32"


def test_cuda_defaults_to_fp16_where_the_family_is_fp16_safe() -> None:
    assert choose_precision(CUDA, family(bf16_faithful=True)) == "fp16"
    assert choose_precision(CUDA, family(bf16_faithful=False, fp16_safe=False)) == "fp32"


def test_impossible_precisions_are_option_errors() -> None:
    with pytest.raises(OptionsError, match="fp16 is not supported on the CPU"):
        choose_precision(CPU, family(bf16_faithful=True), "fp16")
    with pytest.raises(OptionsError, match="unknown precision"):
        choose_precision(CPU, family(bf16_faithful=True), "int8")  # type: ignore[arg-type]


def test_the_job_option_names_the_precision_of_both_models_and_their_keys(
    clip_with_audio: Path, tmp_path: Path
) -> None:
    plans = {
        precision: Pipeline(
            clip_with_audio, tmp_path / "out.mp4", JobOptions(precision=precision), RunOptions(device="cpu")
        ).plan
        for precision in (None, "fp32")
    }
    expected = "bf16" if engine.cpu_has_native_bf16() else "fp32"
    assert plans[None].upscaler and plans[None].upscaler.precision == expected
    assert plans["fp32"].upscaler and plans["fp32"].interpolator
    assert plans["fp32"].upscaler.precision == plans["fp32"].interpolator.precision == "fp32"
    assert (plans[None].job == plans["fp32"].job) == (expected == "fp32")
    with pytest.raises(OptionsError, match="fp16 is not supported on the CPU"):
        Pipeline(clip_with_audio, tmp_path / "out.mp4", JobOptions(precision="fp16"), RunOptions(device="cpu"))


def test_the_backend_option_reaches_both_engines_and_the_plan(clip_with_audio: Path, tmp_path: Path) -> None:
    """``--backend compile``: the engines compile on their first call (not run here), and the plan
    names the backend in both models, so its keys are another job's."""
    eager, compiled = (
        Pipeline(clip_with_audio, tmp_path / "out.mp4", JobOptions(backend=backend), RunOptions(device="cpu")).plan
        for backend in (None, "compile")
    )
    assert compiled.upscaler and compiled.interpolator and eager.upscaler
    assert compiled.upscaler.backend == compiled.interpolator.backend == "compile"
    assert eager.upscaler.backend == "eager" and eager.job != compiled.job
