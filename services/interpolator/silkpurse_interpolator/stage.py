"""The interpolation stage: one input batch in, the output frames it owns out.

Reads as a story: plan the outputs this batch owns (``timing``), classify each input pair
(duplicate, cut, or motion), copy/hold what needs no network, run RIFE on the rest in one
call, assemble. Every decision depends only on the pair's own two frames and the exact
rate plan, so the output bytes do not depend on the batch size.

Scene cuts: a pair (i, i+1) whose cut score exceeds ``scene_threshold`` is never blended;
outputs with ``t < 0.5`` repeat frame i and the others repeat frame i+1, so the cut lands at
the output frame nearest its true time. Exact duplicates (i == i+1 byte for byte) are copied
without running the network.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from fractions import Fraction

import numpy as np
import torch

from silkpurse import timeline
from silkpurse.batch import FrameBatch
from silkpurse.errors import InputError, OptionsError
from silkpurse.nn.transfer import ResidentBatches
from silkpurse.store import BatchStore, finished_batch
from silkpurse.tasks import InterpolateResult, InterpolateTask, check_model
from silkpurse_interpolator import scene, timing
from silkpurse_interpolator.engine import Interpolator, Pair


@dataclass(frozen=True)
class InterpolatedBatch:
    batch: FrameBatch
    """Output frames; ``first_index`` is the first output ``j``, ``rate`` the output rate."""
    cuts: list[int] = field(default_factory=list)
    """Input indices ``i`` where the pair (i, i+1) is a scene cut (nothing blended across)."""
    duplicates: list[int] = field(default_factory=list)
    """Input indices ``i`` where frame i+1 repeats frame i exactly (copied, no network)."""
    interpolated: int = 0
    """Output frames that went through the network."""


def interpolate(
    task: InterpolateTask, store: BatchStore, engine: Interpolator, resident: ResidentBatches | None = None
) -> InterpolateResult:
    """The store entry point: interpolate ``task.source`` (towards the first frame of
    ``task.next``) into ``task.output``, unless a previous run already did.

    ``resident``: batches an upscaler of this process left on the device; those found there
    are not read from the store nor uploaded again (the same bytes either way)."""
    done = finished_batch(store, task.output.key)
    if done is not None:
        found = done.meta.get("pairs", {})
        return InterpolateResult(
            task.step, task.output, list(found.get("cuts", [])), list(found.get("duplicates", [])), 0, resumed=True
        )
    check_model(task.model, engine.identity(), "interpolator")
    source, source_on_device = _read(task.source.key, store, resident)
    next_frame = None
    on_device = None if source_on_device is None else [source_on_device]
    if task.next is not None:
        following, following_on_device = _read(task.next.key, store, resident)
        next_frame = following.frames[0]
        on_device = None if on_device is None or following_on_device is None else [*on_device, following_on_device[:1]]
    threshold = {} if task.scene_threshold is None else {"scene_threshold": task.scene_threshold}
    result = interpolate_batch(
        source,
        next_frame,
        total_frames=task.frames_in,
        out_rate=task.rate_out,
        interpolator=engine,
        resident=on_device,
        **threshold,
    )
    if (result.batch.first_index, len(result.batch)) != (task.output.first, task.output.frames):
        raise InputError(
            f"batch {task.source.key} gave output frames from {result.batch.first_index} ({len(result.batch)}), "
            f"the plan expects {task.output.first} ({task.output.frames})",
            "plan the job again from the same input",
        )
    # Cuts and duplicates travel with the batch, so a resumed run reports them too.
    pairs = {"cuts": result.cuts, "duplicates": result.duplicates}
    store.put_batch(
        task.output.key, FrameBatch(result.batch.frames, result.batch.first_index, result.batch.rate, {"pairs": pairs})
    )
    return InterpolateResult(task.step, task.output, result.cuts, result.duplicates, result.interpolated, False)


def _read(key: str, store: BatchStore, resident: ResidentBatches | None) -> tuple[FrameBatch, torch.Tensor | None]:
    """A batch, from the device when an upscaler of this process left it there, else from the store."""
    kept = resident.get(key) if resident is not None else None
    return (kept.batch, kept.frames) if kept is not None else (store.get_batch(key), None)


def interpolate_batch(
    batch: FrameBatch,
    next_frame: np.ndarray | None,
    *,
    total_frames: int,
    out_rate: Fraction,
    interpolator: Interpolator,
    scene_threshold: float = scene.DEFAULT_SCENE_THRESHOLD,
    resident: Sequence[torch.Tensor] | None = None,
) -> InterpolatedBatch:
    """Produce the output frames owned by ``batch`` (see ``timing`` for the rules).

    ``next_frame`` is input frame ``batch.end_index`` (first of the next batch); it is
    required unless this is the last batch. ``resident``: the batch's frames (and
    ``next_frame``) already on the interpolator's device, in runs of consecutive frames.
    """
    first, end = batch.first_index, batch.end_index
    _check_args(batch, next_frame, total_frames, out_rate, scene_threshold)
    plan = timing.plan_batch(first, end, total_frames, batch.rate, out_rate)

    # All frames this batch may read, so input i is row i - first and frame `end` is last.
    frames = batch.frames if next_frame is None else np.concatenate((batch.frames, next_frame[None]), 0)
    if frames.shape[3] != 3:
        raise InputError(f"frames have {frames.shape[3]} channels", "the interpolator takes RGB frames")
    available = len(frames)

    cuts, duplicates = _classify_pairs(frames, first, available, scene_threshold)
    cut_set, dup_set = set(cuts), set(duplicates)

    out = np.empty((len(plan), *frames.shape[1:]), dtype=frames.dtype)
    pairs: list[Pair] = []
    slots: list[int] = []
    for slot, item in enumerate(plan):
        row = item.source - first
        if item.kind is not timing.Source.BLEND or item.source in dup_set:
            out[slot] = frames[row]
        elif item.source in cut_set:
            out[slot] = frames[row] if item.t < Fraction(1, 2) else frames[row + 1]
        else:
            pairs.append((row, row + 1, float(item.t)))
            slots.append(slot)
    if pairs:
        out[slots] = interpolator.interpolate_indexed(frames, pairs, resident)

    meta = dict(batch.meta)
    meta["interpolator"] = {**interpolator.describe(), "scene_threshold": scene_threshold}
    first_j = plan[0].index if plan else timeline.first_output_of(first, batch.rate, out_rate)
    result = FrameBatch(frames=out, first_index=first_j, rate=Fraction(out_rate), meta=meta)
    return InterpolatedBatch(batch=result, cuts=cuts, duplicates=duplicates, interpolated=len(pairs))


def _classify_pairs(frames: np.ndarray, first: int, available: int, threshold: float) -> tuple[list[int], list[int]]:
    """Cuts and duplicates among the pairs (i, i+1) this batch owns (i inside the batch)."""
    cuts: list[int] = []
    duplicates: list[int] = []
    is_cut = scene.cuts_between(frames[:available], threshold)
    for row in range(available - 1):
        if scene.is_duplicate(frames[row], frames[row + 1]):
            duplicates.append(first + row)
        elif is_cut[row]:
            cuts.append(first + row)
    return cuts, duplicates


def _check_args(
    batch: FrameBatch, next_frame: np.ndarray | None, total_frames: int, out_rate: Fraction, threshold: float
) -> None:
    if batch.end_index > total_frames:
        raise InputError(
            f"batch covers frames [{batch.first_index}, {batch.end_index}) but the stream has {total_frames}",
            "pass the stream's total frame count",
        )
    if Fraction(out_rate) <= 0:
        raise OptionsError(f"output rate must be positive, got {out_rate}", "give a positive --fps")
    if not threshold > 0:
        raise OptionsError(
            f"scene threshold must be > 0, got {threshold}", "use e.g. 0.12, or 1 to disable cut detection"
        )
    if timeline.needs_next_frame(batch.end_index, total_frames):
        if next_frame is None:
            raise InputError(
                f"batch [{batch.first_index}, {batch.end_index}) needs frame {batch.end_index} to interpolate",
                "pass the next batch's first frame as next_frame",
            )
    elif next_frame is not None:
        raise InputError("next_frame given for the last batch", "pass next_frame=None for the last batch")
    mismatched = next_frame is not None and (
        next_frame.shape != batch.frames.shape[1:] or next_frame.dtype != batch.frames.dtype
    )
    if next_frame is not None and mismatched:
        raise InputError(
            f"next frame is {next_frame.shape} {next_frame.dtype}, batch frames are "
            f"{batch.frames.shape[1:]} {batch.frames.dtype}",
            "all frames of a stream must share size and bit depth",
        )
