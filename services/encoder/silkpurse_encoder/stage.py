"""The encode stage's entry points: a chunk's batches into a segment, segments into the output."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

from silkpurse.batch import FrameBatch
from silkpurse.errors import MediaError
from silkpurse.media.probe import count_frames
from silkpurse.output import OutputClaim
from silkpurse.settings import get_settings
from silkpurse.store import BatchStore, LocalStore
from silkpurse.tasks import EncodeTask, JoinResult, JoinTask, SegmentResult, SpeechResult, SpeechTask
from silkpurse_encoder.encode import SegmentWriter, Speech, join, write_segment
from silkpurse_encoder.speech.audio import probe_streams
from silkpurse_encoder.speech.clean import clean_audio_track


def segment_done(store: BatchStore, key: str) -> bool:
    """Segments are stored only once written and checked, so one in the store is finished."""
    return store.exists(key)


def encode_segment(task: EncodeTask, store: BatchStore, batches: Iterable[FrameBatch] | None = None) -> SegmentResult:
    """Encode the task's batches (read from the store, or ``batches`` as a runner computes
    them) into its segment, check it holds every frame, and store it."""
    if segment_done(store, task.segment):
        return SegmentResult(task.step, task.segment, task.frames, resumed=True)
    if batches is None:
        batches = (store.get_batch(ref.key) for ref in task.sources)
    width, height = task.size
    with _scratch() as scratch:
        path = scratch / "segment.mp4"
        writer = SegmentWriter(
            path,
            task.source,
            width=width,
            height=height,
            rate=task.rate,
            sixteen_bit=task.sixteen_bit,
            options=task.options,
        )
        frames = write_segment(_in_order(batches, task), writer)
        written = count_frames(path)
        if frames != task.frames or written != task.frames:
            raise MediaError(
                f"segment {task.segment} holds {written} frames of {frames} written, the plan expects {task.frames}",
                "run the job again; finished work is kept",
            )
        store.upload(task.segment, path)
    return SegmentResult(task.step, task.segment, task.frames, resumed=False)


def clean_speech(task: SpeechTask, store: BatchStore) -> SpeechResult:
    """Clean the speech of the task's audio track into the store, unless a previous run did."""
    if store.exists(task.output):
        return SpeechResult(task.step, task.output, resumed=True)
    with _scratch() as scratch:
        path = scratch / "speech.flac"
        report = clean_audio_track(task.source.path, task.stream, path, level=task.level, loudness=task.loudness)
        store.upload(task.output, path)
    return SpeechResult(task.step, task.output, False, report.method, report.real_time_factor)


def join_segments(task: JoinTask, store: BatchStore, output: Path, claim: OutputClaim | None = None) -> JoinResult:
    """Join the task's segments into ``output`` with the source's other streams (the cleaned
    speech in place of the first audio track, when the task has one), and check it.

    ``claim``: the runner's :func:`~silkpurse.output.claim_output` of ``output`` when this runs in
    another thread than the one that claimed it; otherwise the join claims (or joins the same
    thread's claim) itself."""
    with _scratch() as scratch, ExitStack() as files:
        segments = [files.enter_context(_local_file(store, key, scratch)) for key in task.segments]
        speech = None
        if task.speech is not None:
            track = files.enter_context(_local_file(store, task.speech, scratch))
            speech = Speech(track, _audio_start(task.source.path), task.keep_original_audio)
        # join() publishes the output only once it holds the plan's frames (checked before the rename).
        return join(
            segments,
            output,
            task.source,
            rate=task.rate,
            options=task.options,
            scratch=scratch,
            frames=task.frames,
            speech=speech,
            claim=claim,
        )


def _audio_start(source: Path) -> float:
    """Where the source's first audio track starts in its file: the cleaned track starts there too."""
    return probe_streams(source).audio[0].start_time


def _in_order(batches: Iterable[FrameBatch], task: EncodeTask) -> Iterator[FrameBatch]:
    """Batches exactly as the plan lists them: a runner's bug must not reorder the video."""
    expected = iter(task.sources)
    for batch in batches:
        ref = next(expected, None)
        if ref is None or (batch.first_index, len(batch)) != (ref.first, ref.frames):
            raise MediaError(f"segment {task.segment} got frames out of plan order", "report this as a bug")
        yield batch


@contextmanager
def _scratch() -> Iterator[Path]:
    """A private folder for ffmpeg's files, beside the work (not in /tmp, often a small tmpfs).
    Folders left by a process that was killed are removed by the next one."""
    root = get_settings().work_dir
    root.mkdir(parents=True, exist_ok=True)
    for stale in root.glob(".encode-*-*"):
        if not _alive(int(stale.name.split("-")[1])):
            shutil.rmtree(stale, ignore_errors=True)
    with tempfile.TemporaryDirectory(prefix=f".encode-{os.getpid()}-", dir=root) as tmp:
        yield Path(tmp)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@contextmanager
def _local_file(store: BatchStore, key: str, scratch: Path) -> Iterator[Path]:
    """A local path of the object under ``key``: the file itself in a local store, else a copy."""
    if isinstance(store, LocalStore):
        yield store.path(key)
        return
    path = scratch / key.replace("/", "_")
    store.download(key, path)
    try:
        yield path
    finally:
        path.unlink(missing_ok=True)
