"""Threads shared between stages on the CPU (``silkpurse.nn.engine.compute``): every network of
a process runs in one compute thread, one call at a time, whichever thread asks, and engines
are built in that thread too, so the process keeps a single OpenMP team (see the module)."""

from __future__ import annotations

import os
import select
import signal
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
import torch

import silkpurse_interpolator.engine as interpolator_engine
import silkpurse_upscaler.engine as upscaler_engine
from silkpurse.errors import OptionsError
from silkpurse.nn import engine
from silkpurse_interpolator.engine import Interpolator
from silkpurse_upscaler.engine import Upscaler

CPU = torch.device("cpu")


class NetworkLog:
    """Which thread ran each forward pass, and the most passes that overlapped."""

    def __init__(self) -> None:
        self.threads: set[int] = set()
        self.running = self.most_at_once = 0
        self._lock = threading.Lock()

    def attach(self, module: torch.nn.Module) -> None:
        module.register_forward_pre_hook(self._enter)
        module.register_forward_hook(self._leave)

    def _enter(self, *_: object) -> None:
        with self._lock:
            self.threads.add(threading.get_ident())
            self.running += 1
            self.most_at_once = max(self.most_at_once, self.running)
        time.sleep(0.01)  # widen the window in which an overlapping call would be seen

    def _leave(self, *_: object) -> None:
        with self._lock:
            self.running -= 1


def test_networks_called_from_several_threads_run_one_at_a_time_in_the_compute_thread() -> None:
    upscaler = Upscaler("realesr-animevideov3", scale=2, device="cpu")
    interpolator = Interpolator("rife-hdv3", device="cpu")
    log = NetworkLog()
    log.attach(upscaler._net)
    log.attach(interpolator.module)
    rng = np.random.default_rng(0)
    small = rng.integers(0, 256, (2, 32, 32, 3), dtype=np.uint8)
    large = rng.integers(0, 256, (2, 64, 64, 3), dtype=np.uint8)

    callers: set[int] = set()

    def upscale() -> np.ndarray:
        callers.add(threading.get_ident())
        return upscaler.upscale(small)

    def interpolate() -> np.ndarray:
        callers.add(threading.get_ident())
        return interpolator.interpolate_indexed(large, [(0, 1, 0.5)])

    # As the walker calls them: the upscale and interpolate pools, two calls each at once.
    with ThreadPoolExecutor(4) as pool:
        futures = [pool.submit(fn) for fn in (upscale, interpolate) * 4]
        results = [f.result(timeout=120) for f in futures]

    assert len(log.threads) == 1, "every network ran in one thread"
    assert log.threads.isdisjoint(callers | {threading.get_ident()})
    assert log.most_at_once == 1
    # The bytes do not depend on the thread that asked.
    assert np.array_equal(results[0], upscaler.upscale(small))
    assert np.array_equal(results[1], interpolator.interpolate_indexed(large, [(0, 1, 0.5)]))


def test_engines_are_built_in_the_compute_thread(monkeypatch: pytest.MonkeyPatch) -> None:
    loaded_in: list[int] = []

    def recording(load):  # type: ignore[no-untyped-def]
        def load_model(*args, **kwargs):  # type: ignore[no-untyped-def]
            loaded_in.append(threading.get_ident())
            return load(*args, **kwargs)

        return load_model

    for module in (upscaler_engine, interpolator_engine):
        monkeypatch.setattr(module, "load_model", recording(module.load_model))
    Upscaler("realesr-animevideov3", device="cpu")
    Interpolator("rife-hdv3", device="cpu")
    assert len(loaded_in) == 2 and loaded_in[0] == loaded_in[1]
    assert loaded_in[0] == engine.on_compute_thread(threading.get_ident) != threading.get_ident()


def test_a_build_error_reaches_the_caller_and_the_compute_thread_carries_on() -> None:
    with pytest.raises(OptionsError, match="rife scale"):
        Interpolator("rife-hdv3", device="cpu", rife_scale=3.0)
    with pytest.raises(OptionsError, match="fp16 is not supported on the CPU"):
        Upscaler("realesr-animevideov3", device="cpu", precision="fp16")
    assert engine.on_compute_thread(lambda: 42) == 42


def test_work_asked_for_inside_the_compute_thread_runs_at_once() -> None:
    """An engine method that calls another (``warm_up`` calls ``upscale``) must not wait for itself."""
    inner = engine.on_compute_thread(lambda: engine.on_compute_thread(threading.get_ident))
    assert inner == engine.on_compute_thread(threading.get_ident)
    assert engine.compute(CPU, torch.is_inference_mode_enabled)
    assert not engine.on_compute_thread(torch.is_inference_mode_enabled)


def test_a_forked_child_starts_a_compute_thread_of_its_own() -> None:
    engine.on_compute_thread(threading.get_ident)  # the parent's thread exists
    read, write = os.pipe()
    child = os.fork()
    if child == 0:  # the child: a network call must not wait for the parent's thread
        try:
            os.write(write, str(engine.compute(CPU, lambda: int(torch.ones(3).sum()))).encode())
        finally:
            os._exit(0)
    os.close(write)
    try:
        ready, _, _ = select.select([read], [], [], 60)
        assert ready, "the child waited for a compute thread that does not exist in it"
        assert os.read(read, 16) == b"3"
    finally:
        os.close(read)
        if not ready:
            os.kill(child, signal.SIGKILL)
        os.waitpid(child, 0)
