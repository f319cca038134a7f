"""The stage calls of a flow run: each service call is a Prefect task run.

:class:`FlowStages` is the flow's :class:`~silkpurse.walker.StageCalls`. It wraps the services'
calls (:class:`~silkpurse.service.remote.RemoteStages`) so that every extract, upscale,
interpolate, encode and join shows in the Prefect UI as a task run named by its plan step
(``c00001/upscale/b0003``), and:

* is bounded by the walker's fan-out (replicas x ``SILKPURSE_CALLS_PER_REPLICA`` calls in
  flight per stage), not by a Prefect concurrency slot per call: measured, acquiring a global
  slot around every batch call cost about 2 s per call in Prefect's client (its acquisitions
  for one limit go one at a time) and cut replica use to 21-37 % (docs/benchmarks.md). Across
  flow runs, each replica's admission queue bounds the calls (RESOURCE_EXHAUSTED beyond it,
  retried on another replica), and the deployment's concurrency limit bounds the runs;
* is retried by Prefect with backoff when the failure is transient (a replica gone or busy,
  the store not answering: ``err.retryable``), after the gRPC channel's own retries on other
  replicas; a permanent error fails the run at once;
* skips finished work through the stage contracts, not Prefect's result cache: a re-run of
  a failed or cancelled flow run calls the services again and they answer "resumed" for every
  batch and segment already in the store.

The extraction is a streaming task (one task run per chunk, yielding each batch as it is
stored); it is not retried by Prefect, since a retry would yield the chunk's batches again.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

from prefect import Task, task
from prefect.cache_policies import NO_CACHE
from prefect.client.schemas.objects import TaskRun
from prefect.states import State

from silkpurse import tasks
from silkpurse.errors import SilkpurseError
from silkpurse.service.remote import RemoteStages

#: Prefect's retries of a transient failure, after the channel's own (see silkpurse.service.client).
RETRIES = 3
RETRY_DELAYS_S = [2, 10, 30]


def transient(_task: Task[..., Any], _run: TaskRun, state: State[Any]) -> bool:
    """Retry only what another attempt may fix."""
    try:
        state.result(raise_on_failure=True)
    except SilkpurseError as err:
        return err.retryable
    except Exception:
        return False
    return False


_retried: dict[str, Any] = {
    "retries": RETRIES,
    "retry_delay_seconds": RETRY_DELAYS_S,
    "retry_condition_fn": transient,
    "cache_policy": NO_CACHE,
    "persist_result": False,
}


@task(name="extract", task_run_name="{task.step}", cache_policy=NO_CACHE, persist_result=False)
def extract(stages: RemoteStages, task: tasks.ExtractTask) -> Iterator[tasks.ExtractedBatch]:
    yield from stages.extract(task)


@task(name="upscale", task_run_name="{task.step}", **_retried)
def upscale(stages: RemoteStages, task: tasks.UpscaleTask) -> tasks.UpscaleResult:
    return stages.upscale(task)


@task(name="interpolate", task_run_name="{task.step}", **_retried)
def interpolate(stages: RemoteStages, task: tasks.InterpolateTask) -> tasks.InterpolateResult:
    return stages.interpolate(task)


@task(name="encode", task_run_name="{task.step}", **_retried)
def encode_segment(stages: RemoteStages, task: tasks.EncodeTask) -> tasks.SegmentResult:
    return stages.services.encoder.encode_segment(stages.job, task, stages.input_key)


@task(name="join", task_run_name="{task.step}", **_retried)
def join(stages: RemoteStages, task: tasks.JoinTask) -> tasks.JoinResult:
    return stages.services.encoder.join(stages.job, task, stages.input_key, stages.output_key)


class FlowStages:
    """The services' stage calls as Prefect task runs (a :class:`~silkpurse.walker.StageCalls`).

    ``join`` leaves the output in the store at ``remote.output_key``; the flow publishes it."""

    def __init__(self, remote: RemoteStages) -> None:
        self.remote = remote

    def extract(self, task: tasks.ExtractTask) -> Iterator[tasks.ExtractedBatch]:
        return iter(extract(self.remote, task))

    def upscale(self, task: tasks.UpscaleTask) -> tasks.UpscaleResult:
        return upscale(self.remote, task)

    def interpolate(self, task: tasks.InterpolateTask) -> tasks.InterpolateResult:
        return interpolate(self.remote, task)

    def encode_segment(self, task: tasks.EncodeTask, ready: Iterator[str]) -> tasks.SegmentResult:
        for _key in ready:  # the encoder reads the chunk's batches from the store once all are there
            pass
        return encode_segment(self.remote, task)

    def clean_speech(self, task: tasks.SpeechTask) -> tasks.SpeechResult:
        return self.remote.clean_speech(task)  # refused with its reason: no CleanSpeech call yet

    def join(self, task: tasks.JoinTask, output: Path) -> tasks.JoinResult:
        return join(self.remote, task)

    def segment_done(self, key: str) -> bool:
        return self.remote.segment_done(key)

    def drop(self, prefix: str) -> None:
        self.remote.drop(prefix)
