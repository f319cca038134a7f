"""The upscaler on the shared model layer: real weights recognised, sha256 by name and by path,
identity() and warm_up()."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
import torch

from silkpurse.models import import_weights, resolve_weights
from silkpurse.nn.architecture import ARCHITECTURES, load_model
from silkpurse.nn.checkpoint import read_state_dict
from silkpurse_upscaler.archs.compact import SRVGGNetCompact
from silkpurse_upscaler.archs.rrdbnet import RRDBNet
from silkpurse_upscaler.engine import Upscaler

REAL = [
    ("realesr-animevideov3", "SRVGGNetCompact", 4, 1),
    ("realesrgan-x4plus-anime", "RRDBNet", 4, 1),
    ("realesrgan-x4plus", "RRDBNet", 4, 1),
]


@pytest.mark.parametrize(("name", "family", "scale", "multiple"), REAL)
def test_real_weights_are_recognised_by_exactly_one_family(name: str, family: str, scale: int, multiple: int) -> None:
    state = read_state_dict(resolve_weights(name, "upscale").path)
    assert [a.name for a in ARCHITECTURES.all() if a.detect(state)] == [family]
    d = load_model(state)  # no kind needed: the registry knows every family
    assert (d.family, d.kind, d.scale, d.size_multiple, d.tiling) == (family, "upscale", scale, multiple, "supported")
    assert d.supports_half and d.parameters == sum(t.numel() for t in state.values())


def test_sha256_by_name_and_by_path_is_that_of_the_file() -> None:
    by_name = resolve_weights("realesr-animevideov3", "upscale")
    assert by_name.spec is not None and by_name.name == "realesr-animevideov3"
    assert by_name.sha256 == hashlib.sha256(by_name.path.read_bytes()).hexdigest()
    for given in (by_name.path, str(by_name.path)):
        by_path = resolve_weights(given, "upscale")
        assert (by_path.sha256, by_path.spec, by_path.name) == (by_name.sha256, None, by_name.path.stem)


def test_identity_names_the_bytes_not_the_device(anime_upscaler: Upscaler) -> None:
    identity = anime_upscaler.identity()
    assert identity == {
        "kind": "upscale",
        "weights_sha256": resolve_weights("realesr-animevideov3", "upscale").sha256,
        "family": "SRVGGNetCompact",
        "precision": "fp32",
        "scale": 4,
        "tile": "auto",
        "tile_pad": 10,
        "denoise_strength": None,
        "denoise_weights_sha256": None,
    }
    if not torch.cuda.is_available():  # here "auto" is the CPU: the same bytes, the same identity
        assert Upscaler("realesr-animevideov3", device="auto", precision="fp32").identity() == identity
    # The same file given by path is the same model.
    assert Upscaler(anime_upscaler.weights.path, device="cpu", precision="fp32").identity() == identity


def test_identity_changes_with_weights_and_options(anime_upscaler: Upscaler) -> None:
    base = anime_upscaler.identity((64, 96))
    assert (base["tile"], base["tile_pad"]) == (0, 0)  # small frames are never tiled on the CPU
    assert Upscaler("realesr-animevideov3", device="cpu", scale=2).identity((64, 96))["scale"] == 2
    tiled = Upscaler("realesr-animevideov3", device="cpu", tile=32).identity((64, 96))
    assert (tiled["tile"], tiled["tile_pad"]) == (32, 10)
    other = Upscaler("realesrgan-x4plus-anime", device="cpu").identity((64, 96))
    assert other["weights_sha256"] != base["weights_sha256"] and other["family"] == "RRDBNet"
    assert len({repr(sorted(i.items())) for i in (base, tiled, other)}) == 3


def test_identity_changes_with_precision(monkeypatch: pytest.MonkeyPatch, anime_upscaler: Upscaler) -> None:
    # bf16 is refused on CPUs without native bf16; the identity question is the same
    monkeypatch.setattr("silkpurse.nn.engine.cpu_has_native_bf16", lambda: True)
    bf16 = Upscaler("realesr-animevideov3", device="cpu", precision="bf16")
    assert bf16.precision == "bf16" and bf16.identity()["precision"] == "bf16"
    assert {**bf16.identity(), "precision": "fp32"} == anime_upscaler.identity()


def test_denoise_blend_is_in_the_identity(tmp_path: Path, private_models_dir: Path) -> None:
    for seed, name in enumerate(("realesr-general-x4v3", "realesr-general-wdn-x4v3")):
        torch.default_generator.manual_seed(seed)
        torch.save({"params": SRVGGNetCompact(num_feat=8, num_conv=2).state_dict()}, tmp_path / f"{name}.pth")
        import_weights(tmp_path / f"{name}.pth", name=name)
    plain = Upscaler("realesr-general-x4v3", device="cpu").identity()
    blended = Upscaler("realesr-general-x4v3", device="cpu", denoise_strength=0.25).identity()
    assert blended["denoise_strength"] == 0.25
    assert blended["denoise_weights_sha256"] == resolve_weights("realesr-general-wdn-x4v3", "upscale").sha256
    # Strength 1 is the general model alone: the same bytes, the same identity.
    assert Upscaler("realesr-general-x4v3", device="cpu", denoise_strength=1.0).identity() == plain


def test_warm_up_runs_one_small_pass_on_the_cpu(anime_upscaler: Upscaler, tmp_path: Path) -> None:
    before = anime_upscaler.identity()
    seconds = anime_upscaler.warm_up()
    assert 0 < seconds < 30
    assert anime_upscaler.identity() == before
    # A x2 RRDBNet needs even sides; warm-up at the real frame size too (cuDNN times per shape).
    path = tmp_path / "x2.pth"
    torch.save(RRDBNet(scale=2, num_feat=8, num_block=1, num_grow_ch=4).state_dict(), path)
    x2 = Upscaler(path, device="cpu")
    assert x2.descriptor.size_multiple == 2
    assert x2.warm_up() > 0 and x2.warm_up((31, 47)) > 0


def test_a_compiled_backend_is_in_the_identity(anime_upscaler: Upscaler) -> None:
    # Compiled kernels round differently from eager ones (within 45 dB): other bytes, another identity.
    compiled = Upscaler("realesr-animevideov3", device="cpu", precision="fp32", backend="compile")
    assert compiled.identity() == {**anime_upscaler.identity(), "backend": "compile"}
