"""The extractor's gRPC servicer: a thin adapter from ``Extract`` to :func:`stage.extract_stream`.

The request is validated into an :class:`~silkpurse.tasks.ExtractTask` (see
:mod:`silkpurse.service.messages`), the job's input is fetched from the store into a private
folder (once per input, sha256 verified), and each batch is reported as soon as it is stored.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from dataclasses import replace

import grpc

from silkpurse.service import messages
from silkpurse.service.inputs import InputCache
from silkpurse.service.metrics import record_batch
from silkpurse.service.server import serve
from silkpurse.service.settings import ServiceSettings
from silkpurse.store import BatchStore, open_store
from silkpurse.v1 import extractor_pb2, extractor_pb2_grpc
from silkpurse_extractor.stage import extract_stream

SERVICE = extractor_pb2.DESCRIPTOR.services_by_name["ExtractorService"].full_name
log = logging.getLogger("silkpurse.extractor")


class ExtractorServicer(extractor_pb2_grpc.ExtractorServiceServicer):
    def __init__(self, store: BatchStore, inputs: InputCache) -> None:
        self.store, self.inputs = store, inputs

    def Extract(  # noqa: N802 (gRPC's method name)
        self, request: extractor_pb2.ExtractRequest, context: grpc.ServicerContext
    ) -> Iterator[extractor_pb2.ExtractResponse]:
        job, task, input_key = messages.extract_task(request)
        task = replace(task, source=replace(task.source, path=self.inputs.local(input_key)))
        last = time.perf_counter()
        for done in extract_stream(task, self.store):
            now = time.perf_counter()
            record_batch("extract", done.batch.frames, resumed=done.resumed, seconds=now - last)
            log.info(
                "batch",
                extra={"job": job, "step": task.step, "stage": "extract", "key": done.batch.key,
                       "resumed": done.resumed, "seconds": round(now - last, 4)},
            )  # fmt: skip
            last = now
            yield extractor_pb2.ExtractResponse(batch=messages.batch_msg(done.batch), resumed=done.resumed)
            if not context.is_active():
                return


def main(settings: ServiceSettings) -> int:
    store = open_store(settings)
    inputs = InputCache(store, settings.work_dir)
    try:
        servicer = ExtractorServicer(store, inputs)
        return serve(
            servicer, extractor_pb2_grpc.add_ExtractorServiceServicer_to_server, SERVICE, "extractor", settings
        )
    finally:
        inputs.close()
