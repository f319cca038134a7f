"""The encoder's gRPC servicer: thin adapters from ``EncodeSegment`` and ``Join`` to
:func:`stage.encode_segment` and :func:`stage.join_segments`.

Both read the job's input from the store into a private folder (once per input, sha256
verified): its colour tags go into each segment, its audio, subtitles and metadata into the
output. ``Join`` writes the output under ``outputs/<job>/<name>`` in the store.
"""

from __future__ import annotations

import logging
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import grpc

from silkpurse.service import messages
from silkpurse.service.inputs import InputCache
from silkpurse.service.metrics import record_batch
from silkpurse.service.server import serve
from silkpurse.service.settings import ServiceSettings
from silkpurse.store import BatchStore, open_store
from silkpurse.v1 import encoder_pb2, encoder_pb2_grpc
from silkpurse_encoder.stage import encode_segment, join_segments

SERVICE = encoder_pb2.DESCRIPTOR.services_by_name["EncoderService"].full_name
log = logging.getLogger("silkpurse.encoder")


class EncoderServicer(encoder_pb2_grpc.EncoderServiceServicer):
    def __init__(self, store: BatchStore, inputs: InputCache, scratch: Path) -> None:
        self.store, self.inputs, self.scratch = store, inputs, scratch

    def EncodeSegment(  # noqa: N802 (gRPC's method name)
        self, request: encoder_pb2.EncodeSegmentRequest, context: grpc.ServicerContext
    ) -> encoder_pb2.EncodeSegmentResponse:
        job, task, input_key = messages.encode_task(request)
        task = replace(task, source=replace(task.source, path=self.inputs.local(input_key)))
        started = time.perf_counter()
        result = encode_segment(task, self.store)
        seconds = time.perf_counter() - started
        record_batch("encode", result.frames, resumed=result.resumed, seconds=seconds)
        log.info(
            "segment",
            extra={"job": job, "step": task.step, "stage": "encode", "key": result.segment,
                   "resumed": result.resumed, "seconds": round(seconds, 4)},
        )  # fmt: skip
        return encoder_pb2.EncodeSegmentResponse(
            step=result.step, segment=result.segment, frames=result.frames, resumed=result.resumed
        )

    def Join(  # noqa: N802 (gRPC's method name)
        self, request: encoder_pb2.JoinRequest, context: grpc.ServicerContext
    ) -> encoder_pb2.JoinResponse:
        job, task, input_key, output_key = messages.join_task(request)
        task = replace(task, source=replace(task.source, path=self.inputs.local(input_key)))
        started = time.perf_counter()
        self.scratch.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(prefix=".join-", dir=self.scratch) as tmp:
            output = Path(tmp) / output_key.rsplit("/", 1)[-1]
            report = join_segments(task, self.store, output)
            self.store.upload(output_key, output)
        seconds = time.perf_counter() - started
        log.info(
            "joined",
            extra={"job": job, "step": task.step, "stage": "join", "key": output_key, "seconds": round(seconds, 4)},
        )
        return encoder_pb2.JoinResponse(
            output=output_key,
            frames=report.frames,
            copied_streams=report.copied_streams,
            reencoded_streams=report.reencoded_streams,
            dropped_streams=report.dropped_streams,
        )


def main(settings: ServiceSettings) -> int:
    store = open_store(settings)
    inputs = InputCache(store, settings.work_dir)
    try:
        servicer = EncoderServicer(store, inputs, settings.work_dir)
        return serve(servicer, encoder_pb2_grpc.add_EncoderServiceServicer_to_server, SERVICE, "encoder", settings)
    finally:
        inputs.close()
