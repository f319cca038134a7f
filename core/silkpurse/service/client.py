"""The client side of the services: channels with retries and load balancing, and one typed
wrapper per service taking the core's task dataclasses, so a runner can swap a local stage
call for a remote one.

Channels
    ``connect(target)`` takes ``host:port``, a comma list ``host:port,host:port`` (replicas) or
    any gRPC target such as ``dns:///upscaler.internal:50052``. A comma list becomes one channel
    over all its addresses (hosts resolved once, ``ipv4:``/``ipv6:`` target) and a ``dns:///``
    name is re-resolved by gRPC; either way the channel balances calls ``round_robin`` across
    the replicas. Retries are declared once, in the channel's service config: UNAVAILABLE and
    RESOURCE_EXHAUSTED (a replica draining, down or busy) are retried up to
    :data:`MAX_ATTEMPTS` times with exponential backoff, and each retry is balanced again, so it
    usually lands on another replica. Every call carries a deadline (``timeout_s``).

Wrappers (``job`` is the plan's job id, ``plan.job``; tasks come from :mod:`silkpurse.tasks`)::

    store.upload(input_key, source)                  # input_key = input_key_of(sha256, source)
    ex = ExtractorClient(connect("127.0.0.1:50051"))
    for done in ex.extract_stream(job, extract_task, input_key):   # ExtractedBatch(batch, resumed)
        ...
    up = UpscalerClient(connect("10.0.0.5:50052,10.0.0.6:50052"))
    model = up.describe().model                      # plan with the replicas' exact weights
    up.upscale(job, upscale_task)                    # -> UpscaleResult(step, output, resumed)
    it = InterpolatorClient(connect(...))
    it.interpolate(job, interpolate_task)            # -> InterpolateResult(step, output, cuts, ...)
    en = EncoderClient(connect(...))
    en.encode_segment(job, encode_task, input_key)   # -> SegmentResult(step, segment, frames, resumed)
    en.join(job, join_task, input_key, output_key)   # -> JoinResult(output, frames, streams...)
    store.download(output_key, out_path)             # output_key = output_key_of(job, out_path.name)

The results are the stages' own result dataclasses from :mod:`silkpurse.tasks`
(``JoinResult.output`` is the output's store key here), so a runner's ``StageCalls`` can return
them as they come. A failed call raises :class:`RemoteError` carrying the status code and the
service's one-line message; ``err.retryable`` tells a runner whether another attempt may succeed.
"""

from __future__ import annotations

import ipaddress
import json
import socket
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import grpc

from silkpurse.errors import SilkpurseError
from silkpurse.plan import ModelRef
from silkpurse.service import messages
from silkpurse.service.messages import input_key_of
from silkpurse.tasks import (
    EncodeTask,
    ExtractedBatch,
    ExtractTask,
    InterpolateResult,
    InterpolateTask,
    JoinResult,
    JoinTask,
    SegmentResult,
    UpscaleResult,
    UpscaleTask,
)
from silkpurse.v1 import (
    encoder_pb2_grpc,
    extractor_pb2_grpc,
    interpolator_pb2,
    interpolator_pb2_grpc,
    upscaler_pb2,
    upscaler_pb2_grpc,
)

__all__ = [
    "EncoderClient",
    "ExtractorClient",
    "InterpolatorClient",
    "ModelDescription",
    "RemoteError",
    "UpscalerClient",
    "connect",
    "input_key_of",
    "output_key_of",
    "replica_count",
    "service_config",
]

MAX_ATTEMPTS = 4
#: Default deadlines per call, in seconds (a CPU batch of a big model takes minutes).
DEFAULT_TIMEOUT_S = 600.0
_SERVICES = [
    f"silkpurse.v1.{name}" for name in ("ExtractorService", "UpscalerService", "InterpolatorService", "EncoderService")
]
_RETRYABLE = {grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.RESOURCE_EXHAUSTED}
T = TypeVar("T")


def service_config(max_attempts: int = MAX_ATTEMPTS) -> dict[str, Any]:
    """Round robin over the replicas; retries on UNAVAILABLE and RESOURCE_EXHAUSTED (none
    when ``max_attempts`` is 1)."""
    method: dict[str, Any] = {"name": [{"service": name} for name in _SERVICES]}
    if max_attempts > 1:
        method["retryPolicy"] = {
            "maxAttempts": max_attempts,
            "initialBackoff": "0.2s",
            "maxBackoff": "5s",
            "backoffMultiplier": 2.5,
            "retryableStatusCodes": ["UNAVAILABLE", "RESOURCE_EXHAUSTED"],
        }
    return {"loadBalancingConfig": [{"round_robin": {}}], "methodConfig": [method]}


def channel_target(addresses: str) -> str:
    """The gRPC target of ``addresses``: a ``scheme:`` target as given, a comma list of
    ``host:port`` as one ``ipv4:``/``ipv6:`` target of all their addresses."""
    addresses = addresses.strip()
    if "://" in addresses or addresses.startswith(("ipv4:", "ipv6:", "unix:")):
        return addresses
    resolved: list[tuple[int, str]] = []
    for item in filter(None, (a.strip() for a in addresses.split(","))):
        host, _, port = item.rpartition(":")
        host = host.strip("[]")
        if not host or not port.isdigit():
            raise SilkpurseError(f"service address {item!r} is not host:port", "give e.g. 127.0.0.1:50052")
        try:
            ip = ipaddress.ip_address(host)
            found = [(ip.version, str(ip))]
        except ValueError:
            try:
                infos = socket.getaddrinfo(host, int(port), type=socket.SOCK_STREAM)
            except socket.gaierror as err:
                raise SilkpurseError(f"cannot resolve {host} ({err.strerror})", "check the service address") from None
            found = [(6 if info[0] == socket.AF_INET6 else 4, str(info[4][0])) for info in infos]
        for version, address in dict.fromkeys(found):
            resolved.append((version, f"[{address}]:{port}" if version == 6 else f"{address}:{port}"))
    if not resolved:
        raise SilkpurseError(f"no service address in {addresses!r}", "give host:port[,host:port...]")
    v4 = [a for version, a in resolved if version == 4]
    return "ipv4:" + ",".join(v4) if v4 else "ipv6:" + ",".join(a for _, a in resolved)


def replica_count(addresses: str) -> int:
    """How many replicas ``addresses`` names now: the addresses of a comma list or of a
    ``dns:///`` name (a headless Service's pods), else 1."""
    addresses = addresses.strip()
    if addresses.startswith("dns:"):
        host_port = addresses.split("/")[-1]
        host, _, port = host_port.rpartition(":")
        try:
            infos = socket.getaddrinfo(host or host_port, int(port) if port.isdigit() else 443, type=socket.SOCK_STREAM)
        except socket.gaierror:
            return 1  # gRPC re-resolves; the walker still keeps one call in flight
        return max(1, len({info[4][0] for info in infos}))
    target = channel_target(addresses)
    if target.startswith(("ipv4:", "ipv6:")):
        return len(set(target.split(":", 1)[1].split(",")))
    return 1


def connect(addresses: str, *, max_attempts: int = MAX_ATTEMPTS) -> grpc.Channel:
    """An insecure channel to the replicas at ``addresses`` (see the module docs)."""
    options = [
        ("grpc.enable_retries", int(max_attempts > 1)),
        ("grpc.service_config", json.dumps(service_config(max_attempts))),
        ("grpc.max_receive_message_length", 16 * 1024 * 1024),
    ]
    return grpc.insecure_channel(channel_target(addresses), options=options)


class RemoteError(SilkpurseError):
    """A service call failed; ``code`` is its gRPC status, the message the service's one line."""

    def __init__(self, method: str, code: grpc.StatusCode, details: str) -> None:
        self.code = code
        self.retryable = code in _RETRYABLE  # type: ignore[misc]
        super().__init__(f"{method} failed with {code.name}: {details.rstrip('.')}")


def _call(method: str, fn: Any, request: Any, timeout_s: float) -> Any:
    try:
        return fn(request, timeout=timeout_s)
    except grpc.RpcError as err:
        raise RemoteError(method, err.code(), err.details() or "") from None


# -- results ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ModelDescription:
    """What a model replica runs: plan a job with ``model`` and ``options``."""

    model: ModelRef
    identity: dict[str, Any]
    device: str
    options: dict[str, Any]


def output_key_of(job: str, name: str) -> str:
    """The store key a job's output named ``name`` (``out.mp4``) is joined into."""
    key = f"outputs/{job}/{Path(name).name}"
    messages.check_output_key(job, key)
    return key


# -- the wrappers -------------------------------------------------------------------------------


class ExtractorClient:
    def __init__(self, channel: grpc.Channel, *, timeout_s: float = DEFAULT_TIMEOUT_S) -> None:
        self.stub = extractor_pb2_grpc.ExtractorServiceStub(channel)
        self.timeout_s = timeout_s

    def extract_stream(self, job: str, task: ExtractTask, input_key: str) -> Iterator[ExtractedBatch]:
        """The chunk's batches, each as soon as the extractor has stored it."""
        request = messages.extract_request(job, task, input_key)
        responses = self.stub.Extract(request, timeout=self.timeout_s)
        try:
            for response in responses:
                yield ExtractedBatch(messages.batch_of(response.batch), response.resumed)
        except grpc.RpcError as err:
            raise RemoteError("Extract", err.code(), err.details() or "") from None
        finally:
            responses.cancel()

    def extract(self, job: str, task: ExtractTask, input_key: str) -> list[ExtractedBatch]:
        return list(self.extract_stream(job, task, input_key))


class UpscalerClient:
    def __init__(self, channel: grpc.Channel, *, timeout_s: float = DEFAULT_TIMEOUT_S) -> None:
        self.stub = upscaler_pb2_grpc.UpscalerServiceStub(channel)
        self.timeout_s = timeout_s

    def upscale(self, job: str, task: UpscaleTask) -> UpscaleResult:
        response = _call("Upscale", self.stub.Upscale, messages.upscale_request(job, task), self.timeout_s)
        return UpscaleResult(response.step, messages.batch_of(response.output), response.resumed)

    def describe(self) -> ModelDescription:
        r = _call("Describe", self.stub.Describe, upscaler_pb2.UpscalerServiceDescribeRequest(), self.timeout_s)
        options: dict[str, Any] = {
            "scale": r.scale,
            "tile": r.tile if r.HasField("tile") else None,
            "denoise_strength": r.denoise_strength if r.HasField("denoise_strength") else None,
        }
        return ModelDescription(messages.model_of(r.model), json.loads(r.identity_json), r.device, options)


class InterpolatorClient:
    def __init__(self, channel: grpc.Channel, *, timeout_s: float = DEFAULT_TIMEOUT_S) -> None:
        self.stub = interpolator_pb2_grpc.InterpolatorServiceStub(channel)
        self.timeout_s = timeout_s

    def interpolate(self, job: str, task: InterpolateTask) -> InterpolateResult:
        r = _call("Interpolate", self.stub.Interpolate, messages.interpolate_request(job, task), self.timeout_s)
        return InterpolateResult(
            r.step, messages.batch_of(r.output), list(r.cuts), list(r.duplicates), r.interpolated, r.resumed
        )

    def describe(self) -> ModelDescription:
        r = _call("Describe", self.stub.Describe, interpolator_pb2.InterpolatorServiceDescribeRequest(), self.timeout_s)
        options = {"rife_scale": r.rife_scale}
        return ModelDescription(messages.model_of(r.model), json.loads(r.identity_json), r.device, options)


class EncoderClient:
    def __init__(self, channel: grpc.Channel, *, timeout_s: float = DEFAULT_TIMEOUT_S) -> None:
        self.stub = encoder_pb2_grpc.EncoderServiceStub(channel)
        self.timeout_s = timeout_s

    def encode_segment(self, job: str, task: EncodeTask, input_key: str) -> SegmentResult:
        request = messages.encode_request(job, task, input_key)
        r = _call("EncodeSegment", self.stub.EncodeSegment, request, self.timeout_s)
        return SegmentResult(r.step, r.segment, r.frames, r.resumed)

    def join(self, job: str, task: JoinTask, input_key: str, output_key: str) -> JoinResult:
        request = messages.join_request(job, task, input_key, output_key)
        r = _call("Join", self.stub.Join, request, self.timeout_s)
        return JoinResult(
            r.output, r.frames, list(r.copied_streams), list(r.reencoded_streams), list(r.dropped_streams)
        )
