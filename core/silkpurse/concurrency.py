"""Overlapping I/O with compute: run an iterator in a background thread."""

from __future__ import annotations

import contextlib
import contextvars
import queue
import threading
import time
from collections.abc import Generator, Iterable
from typing import TypeVar

T = TypeVar("T")
_DONE = object()

# Every producer thread still running, with its stop flag. A producer may be inside a PyTorch
# call that runs without the GIL; if the interpreter finalises meanwhile (the main thread
# returned or called sys.exit after an error), PyTorch's thread pool is torn down under it and
# the process dies with SIGABRT ("terminate called without an active exception", exit 134).
# Runners therefore call :func:`stop_background` before the process exits.
_running: dict[threading.Thread, threading.Event] = {}
_running_lock = threading.Lock()


def background(items: Iterable[T], depth: int = 2, name: str = "prefetch") -> Generator[T, None, None]:
    """Iterate ``items`` in a thread, up to ``depth`` ahead of the consumer.

    Decoding, model inference (torch releases the GIL) and encoding then run at the same time.
    An exception in the producer is re-raised in the consumer; when the consumer stops early
    the producer is told to stop at its next item (and never blocks on the queue after that).
    """
    slots: queue.Queue[object] = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def offer(item: object) -> bool:
        """Put ``item`` unless the consumer has gone; True if it was put."""
        while not stop.is_set():
            try:
                slots.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        try:
            for item in items:
                if not offer(item):
                    break
            else:
                offer(_DONE)
        except BaseException as err:  # handed to the consumer, which re-raises it
            offer(err)
        finally:
            close = getattr(items, "close", None)
            if stop.is_set() and close is not None:
                with contextlib.suppress(Exception):
                    close()
            with _running_lock:
                _running.pop(threading.current_thread(), None)

    # The producer runs in a copy of the caller's context (a Prefect flow run's, for one).
    thread = threading.Thread(target=contextvars.copy_context().run, args=(produce,), name=name, daemon=True)
    with _running_lock:
        _running[thread] = stop
    thread.start()
    try:
        while True:
            item = slots.get()
            if item is _DONE:
                return
            if isinstance(item, BaseException):
                raise item
            yield item  # type: ignore[misc]
    finally:
        # The producer notices `stop` at its next item; a thread busy computing is not waited
        # for here, so Ctrl-C returns at once (see stop_background for the exit path).
        stop.set()
        with contextlib.suppress(queue.Empty):
            slots.get_nowait()


def stop_background(timeout: float) -> bool:
    """Tell every producer thread to stop and wait up to ``timeout`` seconds for them to end
    (each finishes the item it is computing). True when none is left running, so the
    interpreter may finalise safely; False when one is still inside a long call."""
    deadline = time.monotonic() + timeout
    with _running_lock:
        running = list(_running.items())
    for _, stop in running:
        stop.set()
    for thread, _ in running:
        thread.join(max(0.0, deadline - time.monotonic()))
    with _running_lock:
        return not any(t.is_alive() for t in _running)
