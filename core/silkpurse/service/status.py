"""The one mapping of silkpurse's errors to gRPC status codes (used by the server interceptor).

==============================  ====================  ====================================
error                           status                why
==============================  ====================  ====================================
OptionsError, InputError,       INVALID_ARGUMENT      the request is wrong; retrying fails
OutputError                                           the same way
StoreError: object missing      NOT_FOUND             run the producing step first
StoreError: corrupt object      DATA_LOSS             delete the object so it is recomputed
StoreError: other               FAILED_PRECONDITION   the store cannot take the write
StoreUnavailableError           UNAVAILABLE           transient: retried (another replica)
ModelError, DeviceError         FAILED_PRECONDITION   this replica cannot run this model
MediaError                      INTERNAL              ffmpeg failed on media that probed fine
Overloaded                      RESOURCE_EXHAUSTED    retried, on another replica
DeadlinePassed                  DEADLINE_EXCEEDED     the caller's deadline passed
NotReady                        UNAVAILABLE           warming up or draining
NotFound                        NOT_FOUND             the call names something unknown (a job)
AlreadyExists                   ALREADY_EXISTS        an idempotency key reused differently
WrongState                      FAILED_PRECONDITION   not possible now (cancel a finished job)
Unreachable                     UNAVAILABLE           a server the service needs (Prefect's) is down
anything else                   INTERNAL              a bug: traceback in the log, not sent
==============================  ====================  ====================================

The message sent is the error's one line, the same the CLI prints.
"""

from __future__ import annotations

import grpc

from silkpurse.errors import (
    DeviceError,
    InputError,
    MediaError,
    ModelError,
    OptionsError,
    OutputError,
    SilkpurseError,
    StoreError,
    StoreUnavailableError,
)


class Overloaded(SilkpurseError):
    """This replica is computing as many calls as it may and its queue is full."""

    retryable = True


class DeadlinePassed(SilkpurseError):
    """The caller's deadline passed before the work started."""


class NotReady(SilkpurseError):
    """The service is warming up or draining."""

    retryable = True


class NotFound(SilkpurseError):
    """The call names something that does not exist (a job id no run has)."""


class AlreadyExists(SilkpurseError):
    """The call would create something that exists already, differently (an idempotency key
    used before with other parameters)."""


class WrongState(SilkpurseError):
    """What the call asks is impossible in the current state (cancelling a finished job, a
    deployment that is not served)."""


class Unreachable(SilkpurseError):
    """A server this service depends on (the Prefect API) does not answer."""

    retryable = True


# Words of the store's and the batch reader's messages (silkpurse.store, silkpurse.batch).
_MISSING = ("is not in the store",)
_CORRUPT = ("corrupt", "truncated", "checksum", "not a silkpurse", "has format", "was written for")


def status_of(err: SilkpurseError) -> grpc.StatusCode:
    """The status code a call failing with ``err`` ends with."""
    if isinstance(err, StoreUnavailableError | NotReady | Unreachable):
        return grpc.StatusCode.UNAVAILABLE
    if isinstance(err, StoreError):
        what = err.what.lower()
        if any(word in what for word in _MISSING):
            return grpc.StatusCode.NOT_FOUND
        if any(word in what for word in _CORRUPT):
            return grpc.StatusCode.DATA_LOSS
        return grpc.StatusCode.FAILED_PRECONDITION
    if isinstance(err, OptionsError | InputError | OutputError):
        return grpc.StatusCode.INVALID_ARGUMENT
    if isinstance(err, ModelError | DeviceError):
        return grpc.StatusCode.FAILED_PRECONDITION
    if isinstance(err, Overloaded):
        return grpc.StatusCode.RESOURCE_EXHAUSTED
    if isinstance(err, DeadlinePassed):
        return grpc.StatusCode.DEADLINE_EXCEEDED
    if isinstance(err, NotFound):
        return grpc.StatusCode.NOT_FOUND
    if isinstance(err, AlreadyExists):
        return grpc.StatusCode.ALREADY_EXISTS
    if isinstance(err, WrongState):
        return grpc.StatusCode.FAILED_PRECONDITION
    if isinstance(err, MediaError):
        return grpc.StatusCode.INTERNAL
    return grpc.StatusCode.INTERNAL
