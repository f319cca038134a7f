"""Frames kept on the device between the upscaler and the interpolator of one process
(``silkpurse.nn.transfer.ResidentBatches``): the same bytes as through the store, the upscaled
batches not read back nor uploaded again, the store still holding every batch for resume."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from silkpurse.batch import FrameBatch
from silkpurse.nn.transfer import ResidentBatches
from silkpurse.plan import JobOptions
from silkpurse.store import LocalStore
from silkpurse_interpolator.engine import Interpolator
from silkpurse_upscaler.engine import Upscaler

DEVICES = [
    "cpu",
    pytest.param(
        "cuda", marks=[pytest.mark.gpu, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")]
    ),
]


def frames(n: int, h: int, w: int, dtype: type = np.uint8, seed: int = 0) -> np.ndarray:
    peak = np.iinfo(dtype).max
    return np.random.default_rng(seed).integers(0, peak + 1, (n, h, w, 3), dtype=dtype)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", [np.uint8, np.uint16], ids=["8-bit", "16-bit"])
def test_resident_frames_give_the_bytes_of_host_frames(device: str, dtype: type) -> None:
    upscaler = Upscaler("realesr-animevideov3", scale=2, device=device)
    interpolator = Interpolator("rife-hdv3", device=device)
    source = frames(3, 24, 32, dtype)
    host, on_device = upscaler.upscale_resident(source)
    assert np.array_equal(host, upscaler.upscale(source))
    assert on_device.device.type == device and tuple(on_device.shape) == host.shape
    assert np.array_equal(on_device.cpu().numpy().astype(dtype), host)
    pairs = [(0, 1, 0.5), (1, 2, 0.25)]
    expected = interpolator.interpolate_indexed(host, pairs)
    assert np.array_equal(interpolator.interpolate_indexed(host, pairs, [on_device]), expected)
    # In runs, as a batch and the next batch's first frame arrive.
    assert np.array_equal(interpolator.interpolate_indexed(host, pairs, [on_device[:2], on_device[2:]]), expected)
    with pytest.raises(ValueError, match="are not"):
        interpolator.interpolate_indexed(host[:2], pairs[:1], [on_device])


def test_the_last_batches_are_kept_and_dropped_with_their_chunk() -> None:
    resident = ResidentBatches(capacity=2)
    batch = FrameBatch(frames(2, 4, 4), 0, 30)
    for key in ("job/c00000/a", "job/c00000/b", "job/c00001/a"):
        resident.put(key, batch, torch.from_numpy(batch.frames))
    assert resident.get("job/c00000/a") is None  # the oldest went first
    assert resident.get("job/c00000/b") is not None and len(resident) == 2
    resident.drop_prefix("job/c00000/")
    assert resident.get("job/c00000/b") is None and resident.get("job/c00001/a") is not None
    with pytest.raises(ValueError, match="not the batch's"):
        resident.put("job/x", batch, torch.zeros(1, 4, 4, 3, dtype=torch.uint8))


def test_an_embedded_job_interpolates_from_the_device_with_the_bytes_of_the_store(
    clip_with_audio: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from silkpurse_cli.embedded import Pipeline, RunOptions  # the runner (and its CLI packages) only here

    options = JobOptions(scale=2, interpolate=2, batch_size=4, chunk_frames=12, crf=0, preset="ultrafast")
    reads: list[str] = []
    get_batch = LocalStore.get_batch

    def counted(store: LocalStore, key: str) -> FrameBatch:
        reads.append(key)
        return get_batch(store, key)

    monkeypatch.setattr(LocalStore, "get_batch", counted)
    outputs, upscaled_reads = {}, {}
    for label in ("resident", "store"):
        if label == "store":  # every batch read back from the store instead
            monkeypatch.setattr(ResidentBatches, "get", lambda self, key: None)
        reads.clear()
        pipeline = Pipeline(
            clip_with_audio, tmp_path / f"{label}.mp4", options, RunOptions(work_dir=tmp_path / label, device="cpu")
        )
        pipeline.run()
        plan = pipeline.plan
        upscaled = {plan.batch_key("upscale", c, b) for c in plan.chunks for b in c.batches}
        upscaled_reads[label] = sum(key in upscaled for key in reads)
        outputs[label] = (tmp_path / f"{label}.mp4").read_bytes()
    assert upscaled_reads == {"resident": 0, "store": upscaled_reads["store"]} and upscaled_reads["store"] > 0
    assert outputs["resident"] == outputs["store"]
