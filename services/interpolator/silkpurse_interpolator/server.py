"""The interpolator's gRPC servicer: a thin adapter from ``Interpolate`` to :func:`stage.interpolate`.

A replica loads one model with one ``rife_scale`` at start (health NOT_SERVING until it is
loaded and warmed up). A call is validated into an :class:`~silkpurse.tasks.InterpolateTask`;
one whose model or options differ from the replica's is refused with FAILED_PRECONDITION before
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
from silkpurse.plan import DEFAULT_INTERP_MODEL, Backend
from silkpurse.service import messages
from silkpurse.service.metrics import record_batch
from silkpurse.service.server import serve
from silkpurse.service.settings import ServiceSettings
from silkpurse.store import BatchStore, open_store
from silkpurse.tasks import InterpolateTask, check_model
from silkpurse.v1 import interpolator_pb2, interpolator_pb2_grpc

if TYPE_CHECKING:  # torch is imported by load(), after the port is open (health: NOT_SERVING)
    from silkpurse_interpolator.engine import Interpolator

SERVICE = interpolator_pb2.DESCRIPTOR.services_by_name["InterpolatorService"].full_name
log = logging.getLogger("silkpurse.interpolator")


@dataclass(frozen=True)
class InterpolatorOptions:
    """The replica's model and options (``silkpurse serve interpolator --model ... --rife-scale ...``)."""

    model: str = DEFAULT_INTERP_MODEL
    rife_scale: float = 1.0
    device: str = "auto"
    backend: Backend = "eager"


class InterpolatorServicer(interpolator_pb2_grpc.InterpolatorServiceServicer):
    def __init__(self, store: BatchStore, options: InterpolatorOptions) -> None:
        self.store, self.options = store, options
        self.engine: Interpolator | None = None

    def load(self) -> None:
        """Load the model and run one forward pass (the service's warm-up)."""
        from silkpurse_interpolator.engine import Interpolator

        o = self.options
        engine = Interpolator(o.model, device=o.device, rife_scale=o.rife_scale, backend=o.backend)
        engine.warm_up()
        self.engine = engine

    def Interpolate(  # noqa: N802 (gRPC's method name)
        self, request: interpolator_pb2.InterpolateRequest, context: grpc.ServicerContext
    ) -> interpolator_pb2.InterpolateResponse:
        from silkpurse_interpolator.stage import interpolate

        job, task = messages.interpolate_task(request)
        engine = self._engine_for(task)
        started = time.perf_counter()
        result = interpolate(task, self.store, engine)
        seconds = time.perf_counter() - started
        record_batch("interpolate", task.output.frames, resumed=result.resumed, seconds=seconds)
        log.info(
            "batch",
            extra={"job": job, "step": task.step, "stage": "interpolate", "key": task.output.key,
                   "resumed": result.resumed, "seconds": round(seconds, 4)},
        )  # fmt: skip
        return interpolator_pb2.InterpolateResponse(
            step=result.step,
            output=messages.batch_msg(result.output),
            cuts=result.cuts,
            duplicates=result.duplicates,
            interpolated=result.interpolated,
            resumed=result.resumed,
        )

    def Describe(  # noqa: N802 (gRPC's method name)
        self, request: interpolator_pb2.InterpolatorServiceDescribeRequest, context: grpc.ServicerContext
    ) -> interpolator_pb2.InterpolatorServiceDescribeResponse:
        engine = self._engine()
        identity = engine.identity()
        return interpolator_pb2.InterpolatorServiceDescribeResponse(
            model=messages.model_msg(engine.model_ref()),
            rife_scale=self.options.rife_scale,
            identity_json=json.dumps(identity, sort_keys=True, default=str),
            device=str(engine.device),
        )

    def _engine(self) -> Interpolator:
        assert self.engine is not None, "calls are admitted only after warm-up"
        return self.engine

    def _engine_for(self, task: InterpolateTask) -> Interpolator:
        """This replica's engine, if it computes exactly what the task names."""
        engine = self._engine()
        check_model(task.model, engine.identity(), "interpolator")
        if task.rife_scale != self.options.rife_scale:
            raise ModelError(
                f"this interpolator replica runs rife_scale {self.options.rife_scale:g}; "
                f"the call asks {task.rife_scale:g}",
                "send it to a replica started with the job's options",
            )
        return engine


def main(settings: ServiceSettings, options: InterpolatorOptions) -> int:
    servicer = InterpolatorServicer(open_store(settings), options)
    return serve(
        servicer,
        interpolator_pb2_grpc.add_InterpolatorServiceServicer_to_server,
        SERVICE,
        "interpolator",
        settings,
        warm_up=servicer.load,
    )
