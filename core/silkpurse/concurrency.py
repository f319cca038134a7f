"""Overlapping I/O with compute: run an iterator in a background thread."""

from __future__ import annotations

import contextlib
import queue
import threading
from collections.abc import Iterable, Iterator
from typing import TypeVar

T = TypeVar("T")
_DONE = object()


def background(items: Iterable[T], depth: int = 2, name: str = "prefetch") -> Iterator[T]:
    """Iterate ``items`` in a thread, up to ``depth`` ahead of the consumer.

    Decoding, model inference (torch releases the GIL) and encoding then run at the same time.
    An exception in the producer is re-raised in the consumer; when the consumer stops early
    the producer is told to stop at its next item.
    """
    slots: queue.Queue[object] = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def produce() -> None:
        try:
            for item in items:
                while not stop.is_set():
                    try:
                        slots.put(item, timeout=0.1)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    break
        except BaseException as err:  # handed to the consumer, which re-raises it
            slots.put(err)
            return
        finally:
            close = getattr(items, "close", None)
            if stop.is_set() and close is not None:
                close()
        slots.put(_DONE)

    thread = threading.Thread(target=produce, name=name, daemon=True)
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
        # for (it is a daemon), so Ctrl-C returns at once.
        stop.set()
        with contextlib.suppress(queue.Empty):
            slots.get_nowait()
