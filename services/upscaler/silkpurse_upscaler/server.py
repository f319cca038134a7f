"""The upscaler's gRPC servicer: a thin adapter from ``Upscale`` to :func:`stage.upscale`.

A replica loads one model with one set of options at start (health NOT_SERVING until it is
loaded and warmed up). A call is validated into an :class:`~silkpurse.tasks.UpscaleTask`; one
whose model or options differ from the replica's is refused with FAILED_PRECONDITION before
anything is read. ``Describe`` returns the replica's model reference so a client plans with its
exact weights and precision. torch is imported by the warm-up, after the port is open, so
health answers NOT_SERVING while the model loads.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

import grpc

from silkpurse.errors import ModelError
from silkpurse.plan import DEFAULT_UPSCALE_MODEL, Backend
from silkpurse.service import messages
from silkpurse.service.metrics import record_batch
from silkpurse.service.server import serve
from silkpurse.service.settings import ServiceSettings
from silkpurse.store import BatchStore, open_store
from silkpurse.tasks import UpscaleTask, check_model
from silkpurse.v1 import upscaler_pb2, upscaler_pb2_grpc

if TYPE_CHECKING:  # torch is imported by load(), after the port is open (health: NOT_SERVING)
    from silkpurse_upscaler.engine import Upscaler

SERVICE = upscaler_pb2.DESCRIPTOR.services_by_name["UpscalerService"].full_name
log = logging.getLogger("silkpurse.upscaler")


@dataclass(frozen=True)
class UpscalerOptions:
    """The replica's model and options (``silkpurse serve upscaler --model ... --scale ...``)."""

    model: str = DEFAULT_UPSCALE_MODEL
    scale: int = 2
    tile: int | None = None
    denoise_strength: float | None = None
    device: str = "auto"
    backend: Backend = "eager"


class UpscalerServicer(upscaler_pb2_grpc.UpscalerServiceServicer):
    def __init__(self, store: BatchStore, options: UpscalerOptions) -> None:
        self.store, self.options = store, options
        self.engine: Upscaler | None = None

    def load(self) -> None:
        """Load the model and run one forward pass (the service's warm-up)."""
        from silkpurse_upscaler.engine import Upscaler

        o = self.options
        engine = Upscaler(
            o.model, scale=o.scale, device=o.device, tile=o.tile, denoise_strength=o.denoise_strength, backend=o.backend
        )
        engine.warm_up()
        self.engine = engine

    def Upscale(  # noqa: N802 (gRPC's method name)
        self, request: upscaler_pb2.UpscaleRequest, context: grpc.ServicerContext
    ) -> upscaler_pb2.UpscaleResponse:
        from silkpurse_upscaler.stage import upscale

        job, task = messages.upscale_task(request)
        engine = self._engine_for(task)
        started = time.perf_counter()
        result = upscale(task, self.store, engine)
        seconds = time.perf_counter() - started
        record_batch("upscale", task.output.frames, resumed=result.resumed, seconds=seconds)
        log.info(
            "batch",
            extra={"job": job, "step": task.step, "stage": "upscale", "key": task.output.key,
                   "resumed": result.resumed, "seconds": round(seconds, 4)},
        )  # fmt: skip
        return upscaler_pb2.UpscaleResponse(
            step=result.step, output=messages.batch_msg(result.output), resumed=result.resumed
        )

    def Describe(  # noqa: N802 (gRPC's method name)
        self, request: upscaler_pb2.UpscalerServiceDescribeRequest, context: grpc.ServicerContext
    ) -> upscaler_pb2.UpscalerServiceDescribeResponse:
        engine = self._engine()
        identity = engine.identity()
        response = upscaler_pb2.UpscalerServiceDescribeResponse(
            model=messages.model_msg(engine.model_ref()),
            scale=self.options.scale,
            identity_json=json.dumps(identity, sort_keys=True, default=str),
            device=str(engine.device),
        )
        if self.options.tile is not None:
            response.tile = self.options.tile
        if self.options.denoise_strength is not None:
            response.denoise_strength = self.options.denoise_strength
        return response

    def _engine(self) -> Upscaler:
        assert self.engine is not None, "calls are admitted only after warm-up"
        return self.engine

    def _engine_for(self, task: UpscaleTask) -> Upscaler:
        """This replica's engine, if it computes exactly what the task names."""
        engine = self._engine()
        check_model(task.model, engine.identity(), "upscaler")
        o = self.options
        wanted = (task.scale, task.tile, task.denoise_strength)
        if wanted != (o.scale, o.tile, o.denoise_strength):
            raise ModelError(
                f"this upscaler replica runs scale {o.scale}, tile {o.tile}, denoise {o.denoise_strength}; "
                f"the call asks scale {task.scale}, tile {task.tile}, denoise {task.denoise_strength}",
                "send it to a replica started with the job's options",
            )
        return engine


def main(settings: ServiceSettings, options: UpscalerOptions) -> int:
    servicer = UpscalerServicer(open_store(settings), options)
    return serve(
        servicer,
        upscaler_pb2_grpc.add_UpscalerServiceServicer_to_server,
        SERVICE,
        "upscaler",
        settings,
        warm_up=servicer.load,
    )
