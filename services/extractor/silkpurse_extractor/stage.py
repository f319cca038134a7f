"""The extract stage's entry point: decode a chunk's batches of frames into the store.

One decode per task (a chunk): finished batches are kept, and decoding starts at the first
batch that is missing, so an interrupted chunk resumes without decoding twice. Batches are
stored, and reported, one by one as they are decoded, so the next stage can start on the
first batch while the rest are still decoding.
"""

from __future__ import annotations

from collections.abc import Iterator

from silkpurse.store import BatchStore, finished_batch
from silkpurse.tasks import ExtractedBatch, ExtractResult, ExtractTask
from silkpurse_extractor.extract import decode_ranges


def extract_stream(task: ExtractTask, store: BatchStore) -> Iterator[ExtractedBatch]:
    """Store the task's batches, yielding each as soon as it is in the store."""
    missing = [ref for ref in task.batches if finished_batch(store, ref.key) is None]
    for ref in task.batches:
        if ref not in missing:
            yield ExtractedBatch(ref, resumed=True)
        if missing and ref is missing[0]:
            break
    if not missing:
        return
    # One decode from the first missing batch to the end; batches in between that a previous
    # run finished are decoded again but not stored again.
    todo = [ref for ref in task.batches if ref.first >= missing[0].first]
    wanted = {ref.key for ref in missing}
    decoded = decode_ranges(task.source, [(ref.first, ref.end) for ref in todo])
    for ref, batch in zip(todo, decoded, strict=True):
        if ref.key in wanted:
            store.put_batch(ref.key, batch)
        yield ExtractedBatch(ref, resumed=ref.key not in wanted)


def extract(task: ExtractTask, store: BatchStore) -> ExtractResult:
    """Store all the task's batches."""
    done = list(extract_stream(task, store))
    resumed = sum(d.resumed for d in done)
    return ExtractResult(task.step, tuple(d.batch for d in done), len(done) - resumed, resumed)
