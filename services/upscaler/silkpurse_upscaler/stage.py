"""The upscale stage's entry point: one batch in the store in, its upscaled batch out."""

from __future__ import annotations

from silkpurse.batch import FrameBatch
from silkpurse.store import BatchStore, finished_batch
from silkpurse.tasks import UpscaleResult, UpscaleTask, check_model
from silkpurse_upscaler.engine import Upscaler


def upscale(task: UpscaleTask, store: BatchStore, engine: Upscaler) -> UpscaleResult:
    """Upscale ``task.source`` into ``task.output`` unless a previous run already did."""
    if finished_batch(store, task.output.key) is not None:
        return UpscaleResult(task.step, task.output, resumed=True)
    check_model(task.model, engine.identity(), "upscaler")
    source = store.get_batch(task.source.key)
    frames = engine.upscale(source.frames)
    store.put_batch(task.output.key, FrameBatch(frames, source.first_index, source.rate))
    return UpscaleResult(task.step, task.output, resumed=False)
