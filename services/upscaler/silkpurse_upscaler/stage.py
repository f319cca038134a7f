"""The upscale stage's entry point: one batch in the store in, its upscaled batch out."""

from __future__ import annotations

from silkpurse.batch import FrameBatch
from silkpurse.nn.transfer import ResidentBatches
from silkpurse.store import BatchStore, finished_batch
from silkpurse.tasks import UpscaleResult, UpscaleTask, check_model
from silkpurse_upscaler.engine import Upscaler


def upscale(
    task: UpscaleTask, store: BatchStore, engine: Upscaler, resident: ResidentBatches | None = None
) -> UpscaleResult:
    """Upscale ``task.source`` into ``task.output`` unless a previous run already did.

    With ``resident`` (a next model in this process) the output frames also stay on the device."""
    if finished_batch(store, task.output.key) is not None:
        return UpscaleResult(task.step, task.output, resumed=True)
    check_model(task.model, engine.identity(), "upscaler")
    source = store.get_batch(task.source.key)
    if resident is None:
        output = FrameBatch(engine.upscale(source.frames), source.first_index, source.rate)
    else:
        frames, on_device = engine.upscale_resident(source.frames)
        output = FrameBatch(frames, source.first_index, source.rate)
        resident.put(task.output.key, output, on_device)
    store.put_batch(task.output.key, output)
    return UpscaleResult(task.step, task.output, resumed=False)
