"""The server side shared by the four services: :func:`serve` and the one interceptor.

``serve`` builds a ``grpc.server`` with a thread pool, registers the servicer, the standard
health service (NOT_SERVING until ``warm_up`` has finished, and again while draining) and
server reflection, binds ``host:port`` (loopback by default), serves Prometheus metrics, and
on SIGTERM or SIGINT drains: health NOT_SERVING, new calls refused, in-flight calls given
``SILKPURSE_SHUTDOWN_GRACE_S`` to finish, exit 0.

:class:`ServiceInterceptor` is the one place where calls are admitted and errors mapped:

* a call before warm-up has finished or while draining: UNAVAILABLE;
* a call whose deadline has already passed: DEADLINE_EXCEEDED, nothing done;
* the per-replica concurrency limit (``SILKPURSE_MAX_CONCURRENT``; model stages compute one
  batch at a time) with a short queue (``SILKPURSE_MAX_QUEUE``): beyond it RESOURCE_EXHAUSTED,
  which clients retry on another replica;
* :class:`~silkpurse.errors.SilkpurseError` to a status code by :func:`status.status_of`, with
  the error's one-line message; anything else INTERNAL, its traceback logged and not sent;
* metrics (calls by method and code, calls in flight) and one structured log line per call.
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import Any

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from silkpurse.errors import SilkpurseError
from silkpurse.service import logs, metrics
from silkpurse.service.settings import ServiceSettings
from silkpurse.service.status import DeadlinePassed, NotReady, Overloaded, status_of

log = logging.getLogger("silkpurse.service")


class Limiter:
    """At most ``limit`` calls at once; up to ``queue`` more wait (at most ``wait_s``) for a slot."""

    def __init__(self, limit: int, queue: int, wait_s: float) -> None:
        self.limit, self.queue, self.wait_s = limit, queue, wait_s
        self._cond = threading.Condition()
        self._running = 0
        self._waiting = 0

    @contextmanager
    def slot(self, context: grpc.ServicerContext) -> Iterator[None]:
        self._acquire(context)
        try:
            yield
        finally:
            with self._cond:
                self._running -= 1
                self._cond.notify()

    def _acquire(self, context: grpc.ServicerContext) -> None:
        with self._cond:
            if self._running < self.limit:
                self._running += 1
                return
            if self._waiting >= self.queue:
                raise Overloaded(
                    f"this replica is busy ({self._running} calls running, {self._waiting} queued)",
                    "retry on another replica or later",
                )
            self._waiting += 1
            try:
                give_up = time.monotonic() + self.wait_s
                while self._running >= self.limit:
                    remaining = context.time_remaining()
                    if remaining is not None and remaining <= 0:
                        raise DeadlinePassed("the call's deadline passed while it waited for a free slot")
                    if time.monotonic() >= give_up:
                        raise Overloaded(f"no free slot on this replica within {self.wait_s:g} s", "retry later")
                    self._cond.wait(0.1)
                self._running += 1
            finally:
                self._waiting -= 1


class ServiceState:
    """Whether the service takes calls: after warm-up, until draining."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.ready = threading.Event()
        self.draining = threading.Event()

    def check(self) -> None:
        if self.draining.is_set():
            raise NotReady(f"the {self.name} service is shutting down", "retry on another replica")
        if not self.ready.is_set():
            raise NotReady(f"the {self.name} service is still warming up", "retry in a few seconds")


class ServiceInterceptor(grpc.ServerInterceptor):  # type: ignore[misc]
    """Admission, deadlines, the concurrency limit, error mapping, metrics and logs, for every
    method of ``service`` (health and reflection pass through untouched)."""

    def __init__(self, service: str, state: ServiceState, limiter: Limiter, unlimited: frozenset[str]) -> None:
        self.prefix = f"/{service}/"
        self.state, self.limiter, self.unlimited = state, limiter, unlimited

    def intercept_service(self, continuation: Callable[[Any], Any], details: Any) -> Any:
        handler = continuation(details)
        if handler is None or not details.method.startswith(self.prefix):
            return handler
        method = details.method[len(self.prefix) :]
        kwargs = {
            "request_deserializer": handler.request_deserializer,
            "response_serializer": handler.response_serializer,
        }
        if handler.unary_unary is not None:
            return grpc.unary_unary_rpc_method_handler(self._unary(method, handler.unary_unary), **kwargs)
        if handler.unary_stream is not None:
            return grpc.unary_stream_rpc_method_handler(self._stream(method, handler.unary_stream), **kwargs)
        return handler

    @contextmanager
    def _admitted(self, method: str, context: grpc.ServicerContext) -> Iterator[None]:
        self.state.check()
        remaining = context.time_remaining()
        if remaining is not None and remaining <= 0:
            raise DeadlinePassed("the call's deadline had passed before it started")
        if method in self.unlimited:
            yield
            return
        with self.limiter.slot(context):
            remaining = context.time_remaining()
            if remaining is not None and remaining <= 0:
                raise DeadlinePassed("the call's deadline passed while it waited for a free slot")
            yield

    def _unary(self, method: str, behaviour: Callable[[Any, Any], Any]) -> Callable[[Any, Any], Any]:
        def call(request: Any, context: grpc.ServicerContext) -> Any:
            call_log = _CallLog(method, request)
            try:
                with self._admitted(method, context):
                    response = behaviour(request, context)
            except Exception as err:  # mapped in one place, then the call is aborted
                call_log.failed(err)
            call_log.finish()
            if call_log.code is not grpc.StatusCode.OK:
                context.abort(call_log.code, call_log.message)
            return response

        return call

    def _stream(self, method: str, behaviour: Callable[[Any, Any], Iterator[Any]]) -> Callable[[Any, Any], Any]:
        def call(request: Any, context: grpc.ServicerContext) -> Iterator[Any]:
            call_log = _CallLog(method, request)
            try:
                with self._admitted(method, context):
                    for response in behaviour(request, context):
                        yield response
                        if not context.is_active():  # cancelled, or the deadline passed
                            call_log.code, call_log.message = grpc.StatusCode.CANCELLED, "the client went away"
                            break
            except Exception as err:
                call_log.failed(err)
            call_log.finish()
            if call_log.code not in (grpc.StatusCode.OK, grpc.StatusCode.CANCELLED):
                context.abort(call_log.code, call_log.message)

        return call


class _CallLog:
    """Status, metrics and the log line of one call."""

    def __init__(self, method: str, request: Any) -> None:
        self.method = method
        self.fields = {k: getattr(request, k) for k in ("job", "job_id", "step") if getattr(request, k, "")}
        self.code = grpc.StatusCode.OK
        self.message = ""
        self.started = time.perf_counter()
        metrics.IN_FLIGHT.labels(method).inc()

    def failed(self, err: Exception) -> None:
        if isinstance(err, SilkpurseError):
            self.code, self.message = status_of(err), str(err)
            return
        self.code = grpc.StatusCode.INTERNAL
        self.message = f"internal error in {self.method}: {type(err).__name__}; the server's log has the details"
        log.error("unexpected error", exc_info=err, extra={"method": self.method, **self.fields})

    def finish(self) -> None:
        metrics.IN_FLIGHT.labels(self.method).dec()
        metrics.CALLS.labels(self.method, self.code.name).inc()
        level = logging.INFO if self.code in (grpc.StatusCode.OK, grpc.StatusCode.CANCELLED) else logging.WARNING
        extra = {"method": self.method, "code": self.code.name, "seconds": round(time.perf_counter() - self.started, 4)}
        if self.message:
            extra["error"] = self.message
        log.log(level, "call", extra={**extra, **self.fields})


def serve(
    servicer: object,
    add_fn: Callable[[Any, grpc.Server], None],
    service_name: str,
    stage: str,
    settings: ServiceSettings,
    *,
    warm_up: Callable[[], None] | None = None,
    unlimited: frozenset[str] = frozenset({"Describe"}),
    on_drain: Callable[[], None] | None = None,
) -> int:
    """Serve ``servicer`` until SIGTERM/SIGINT; returns the process's exit status.

    ``warm_up`` runs after the port is open (health says NOT_SERVING meanwhile): a model
    service loads its engine and runs ``engine.warm_up()`` there. If it fails with a
    :class:`SilkpurseError`, the server stops and the error's exit code is returned.
    ``on_drain`` is called when draining begins (before the grace period), so long calls (the
    Jobs API's watches) can end rather than hold the shutdown for the whole grace period.
    """
    logs.configure(stage, settings.log_format)
    state = ServiceState(stage)
    limit = settings.concurrency_for(stage)
    limiter = Limiter(limit, settings.max_queue, settings.queue_wait_s)
    server = grpc.server(
        ThreadPoolExecutor(max_workers=limit + settings.max_queue + 8, thread_name_prefix=stage),
        interceptors=[ServiceInterceptor(service_name, state, limiter, unlimited)],
        options=[("grpc.so_reuseport", 0)],
    )
    add_fn(servicer, server)
    health_servicer = health.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    for name in ("", service_name):
        health_servicer.set(name, health_pb2.HealthCheckResponse.NOT_SERVING)
    reflection.enable_server_reflection(
        (service_name, health_pb2.DESCRIPTOR.services_by_name["Health"].full_name, reflection.SERVICE_NAME), server
    )
    address = f"{settings.host}:{settings.port_for(stage)}"
    try:
        port = server.add_insecure_port(address)
    except RuntimeError:
        port = 0
    if not port:
        log.error("cannot bind", extra={"address": address})
        raise SilkpurseError(f"cannot listen on {address}", "choose another --port or stop what uses it")
    server.start()
    metrics_port = settings.metrics_port_for(stage)
    metrics.start_metrics_server(settings.host, metrics_port)
    log.info("listening", extra={"address": f"{settings.host}:{port}", "metrics_port": metrics_port, "limit": limit})

    stop = threading.Event()
    exit_code = [0]

    def on_signal(signum: int, _frame: Any) -> None:
        log.info("draining", extra={"signal": signal.Signals(signum).name, "grace_s": settings.shutdown_grace_s})
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)

    def warm() -> None:
        started = time.perf_counter()
        try:
            if warm_up is not None:
                warm_up()
        except SilkpurseError as err:
            log.error("warm-up failed", extra={"error": str(err)})
            exit_code[0] = err.exit_code
            stop.set()
            return
        except Exception as err:
            log.error("warm-up failed", exc_info=err)
            exit_code[0] = 1
            stop.set()
            return
        state.ready.set()
        for name in ("", service_name):
            health_servicer.set(name, health_pb2.HealthCheckResponse.SERVING)
        log.info("serving", extra={"warm_up_s": round(time.perf_counter() - started, 3)})

    threading.Thread(target=warm, name="warm-up", daemon=True).start()
    while not stop.wait(0.2):
        pass
    state.draining.set()
    health_servicer.enter_graceful_shutdown()
    if on_drain is not None:
        on_drain()
    started = time.perf_counter()
    server.stop(settings.shutdown_grace_s).wait()
    log.info("stopped", extra={"seconds": round(time.perf_counter() - started, 3), "exit_code": exit_code[0]})
    return exit_code[0]
