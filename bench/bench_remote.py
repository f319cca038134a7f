"""The remote mode's cost: ``enhance --remote`` through the four services and a real S3 server,
against the embedded mode on the same clip in the same run, and the per-batch overhead of a
service call (RPC + store round trip) against the batch's compute.

    .venv/bin/python bench/bench_remote.py [--frames 60] [--width 128]

It starts SeaweedFS (the tests' server, ``tests/s3_server.py``) and the four services
(``silkpurse serve``) on free loopback ports, runs the embedded job and then the remote one
(``--scale 2 --interpolate 2``), and reads the services' own metrics for the call times.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests"))
sys.path.insert(0, str(REPO / "bench"))

from clips import real_clip  # noqa: E402
from s3_server import s3_server  # noqa: E402
from tests.services.conftest import service_env, start, stop, wait_serving  # noqa: E402

from silkpurse.plan import JobOptions  # noqa: E402
from silkpurse.settings import Settings  # noqa: E402
from silkpurse_cli.embedded import Pipeline, RunOptions  # noqa: E402
from silkpurse_cli.remote import RemotePipeline  # noqa: E402

STAGES = ("extractor", "upscaler", "interpolator", "encoder")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=60)
    parser.add_argument("--width", type=int, default=128)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-remote-") as tmp_name:
        tmp = Path(tmp_name)
        clip = tmp / "clip.mp4"
        real_clip(clip, width=args.width, frames=args.frames)
        options = JobOptions(scale=2, interpolate=2, chunk_frames=30)
        started = time.perf_counter()
        Pipeline(clip, tmp / "embedded.mp4", options, RunOptions(device="cpu", work_dir=tmp / "embedded")).run()
        embedded_s = time.perf_counter() - started

        with s3_server(tmp / "s3") as s3:
            env = service_env(tmp, s3, OMP_NUM_THREADS="2")
            servers = {s: start(s, tmp, {**env, "SILKPURSE_WORK_DIR": str(tmp / f"work-{s}")}) for s in STAGES}
            try:
                wait_serving(*servers.values())
                settings = Settings(
                    s3_endpoint=s3.endpoint,
                    s3_access_key=s3.access_key,
                    s3_secret_key=s3.secret_key,
                    s3_bucket=s3.bucket,
                    s3_secure=False,
                    **{f"{s}_addr": servers[s].address for s in STAGES},
                )
                timed = _time_calls()
                started = time.perf_counter()
                remote = RemotePipeline(clip, tmp / "remote.mp4", options, settings=settings)
                remote.run()
                remote_s = time.perf_counter() - started
                server_s = {s: _server_seconds(servers[s]) for s in timed}
                round_trip_s = _store_round_trip(remote, tmp)
            finally:
                for server in servers.values():
                    stop(server)
        same = (tmp / "remote.mp4").read_bytes() == (tmp / "embedded.mp4").read_bytes()
        print(f"clip: {args.frames} real frames at width {args.width}, --scale 2 --interpolate 2, CPU")
        print(
            f"embedded {embedded_s:7.1f} s   remote {remote_s:7.1f} s   remote / embedded {remote_s / embedded_s:.2f}x"
        )
        print(f"outputs byte-identical: {same}")
        for stage, seconds in timed.items():
            count, in_server = server_s[stage]
            rpc = (sum(seconds) - in_server) / len(seconds)
            compute = in_server / count - round_trip_s
            print(
                f"{stage:>12}: {len(seconds)} calls, {sum(seconds) / len(seconds):.3f} s each as the client saw "
                f"them; RPC {rpc * 1e3:.1f} ms + store round trip {round_trip_s * 1e3:.1f} ms per batch against "
                f"{compute:.3f} s of compute ({(rpc + round_trip_s) / compute * 100:.1f} %)"
            )


def _time_calls() -> dict[str, list[float]]:
    """Client-side seconds of every Upscale and Interpolate call the remote runner makes."""
    from silkpurse.service.remote import RemoteStages

    timed: dict[str, list[float]] = {"upscaler": [], "interpolator": []}
    for stage, method in (("upscaler", "upscale"), ("interpolator", "interpolate")):
        original = getattr(RemoteStages, method)

        def wrapper(self: object, task: object, _original: object = original, _seconds: list[float] = timed[stage]):
            started = time.perf_counter()
            try:
                return _original(self, task)  # type: ignore[operator]
            finally:
                _seconds.append(time.perf_counter() - started)

        setattr(RemoteStages, method, wrapper)
    return timed


def _server_seconds(server: object) -> tuple[int, float]:
    """Computed batches and their seconds inside the service (store reads and writes included)."""
    samples = server.metrics()  # type: ignore[attr-defined]
    count = sum(v for k, v in samples.items() if k.startswith("silkpurse_batch_seconds_count"))
    seconds = sum(v for k, v in samples.items() if k.startswith("silkpurse_batch_seconds_sum"))
    return int(count), seconds


def _store_round_trip(remote: RemotePipeline, tmp: Path) -> float:
    """Seconds to read a source batch and write its upscaled batch through the S3 store."""
    import numpy as np

    from silkpurse.batch import FrameBatch

    plan = remote.plan
    width, height = plan.size_in
    small = FrameBatch(np.zeros((plan.options.batch_size, height, width, 3), np.uint8), 0, plan.rate_in)
    big = FrameBatch(np.zeros((plan.options.batch_size, height * 2, width * 2, 3), np.uint8), 0, plan.rate_in)
    best = float("inf")
    for n in range(3):
        started = time.perf_counter()
        remote.store.put_batch(f"bench/{n}/a.safetensors", small)
        remote.store.get_batch(f"bench/{n}/a.safetensors")
        remote.store.put_batch(f"bench/{n}/b.safetensors", big)
        best = min(best, time.perf_counter() - started)
    remote.store.delete_prefix("bench")
    return best


if __name__ == "__main__":
    main()
