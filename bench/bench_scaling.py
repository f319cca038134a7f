"""Scaling the upscaler replicas: the enhance-video Prefect flow against K = 1, 2, 4, 8 replicas.

    .venv/bin/python bench/bench_scaling.py [--replicas 1,2,4,8] [--latency 0.4]
        [--calls-per-replica 2] [--batches-per-replica 15] [--batch-size 4] [--json PATH]

This machine has 2 cores, so the upscaler replicas are fixed-latency replicas
(bench/fixed_latency.py: the real upscaler servicer and stage entry point, reading and writing
the real store, with an engine that takes ``--latency`` seconds per batch, sleeping); everything
else is real: one SeaweedFS S3 server, one Prefect server, the extractor and encoder services
(``silkpurse serve``), the interpolator too when ``--interpolate`` > 1, and the real flow
(``enhance_video(...)`` called in this process, a flow run on the Prefect server) with
``SILKPURSE_UPSCALER_ADDR`` listing the K replicas. The flow takes no Prefect concurrency slot
per call (since 836d08e); the walker's fan-out (K x ``--calls-per-replica`` calls in flight)
bounds the run.

Each K runs its own synthetic clip (64x48 testsrc2, K x ``--batches-per-replica`` batches, so
every replica sees the same number of batches and each K is a different job). Per K:

* upscale phase: from the first ``Upscale`` call's start on any replica to the last one's end
  (the replicas' call traces);
* frames/s over that phase, speed-up against K = 1 and its ratio to K (target >= 0.9);
* utilisation: the replicas' busy seconds (their ``silkpurse_batch_seconds`` sums: the stage
  entry point, store read and write included) over K x the phase (target >= 90 %);
* where the rest went: per replica idle gaps, the flow's task runs (Prefect's own start and
  end of each upscale task run against the replica's start and end of its call), extraction,
  calls refused by a full replica (RESOURCE_EXHAUSTED), the progress artifact updates (made by
  the reporter's own thread, timed).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests"))
sys.path.insert(0, str(REPO / "bench"))

from prefect_server import configure, start_prefect_server  # noqa: E402

_OWN_PREFECT_HOME = "SILKPURSE_TEST_PREFECT_PORT" not in os.environ  # configure() makes a fresh one
configure()  # PREFECT_* must be set before prefect is first imported

from fixed_latency import model_name  # noqa: E402
from s3_server import free_ports, s3_server  # noqa: E402
from tests.services.conftest import Server, service_env, start, stop, wait_serving  # noqa: E402

TARGET_SPEEDUP_RATIO = 0.9
TARGET_UTILISATION = 0.9


@dataclass
class Run:
    replicas: int
    calls_per_replica: int
    frames: int
    batches: int
    flow_s: float
    phase_s: float
    frames_per_s: float
    busy_s: float
    engine_s: float
    utilisation: float
    speedup: float = 0.0
    ratio: float = 0.0
    per_replica_calls: list[int] = field(default_factory=list)
    per_replica_busy_s: list[float] = field(default_factory=list)
    first_call_after_s: float = 0.0
    """From the flow's start to the first Upscale call on any replica."""
    extract_s: float = 0.0
    """The extract task runs' wall time (all chunks)."""
    extract_done_before_phase_end_s: float = 0.0
    idle_s: float = 0.0
    """K x phase - busy: replica time with no call being served."""
    idle_gaps: dict[str, float] = field(default_factory=dict)
    task_overhead: dict[str, float] = field(default_factory=dict)
    """Per upscale task run: Prefect's start to the replica's call start (before), the call's
    end to Prefect's end (after), medians and 90th percentiles, in ms."""
    starved: dict[str, float] = field(default_factory=dict)
    """Replica idle time in the phase split by whether a batch was waiting for it: the
    extractor's log says when each batch reached the store, the traces when its call started
    (:func:`starvation`). ``idle_batch_ready_s``: a replica idle while some extracted batch had
    not started anywhere (the flow issuing calls late); ``idle_nothing_ready_s``: idle with
    every extracted batch started (extraction behind, or the job's end); ``all_idle_s``: phase
    time with no replica computing; ``ready_to_start``: per batch, from the store to its call's
    start, median and p90 in ms (with 2 calls per replica, one waits behind the other)."""
    encode_calls: list[dict[str, Any]] = field(default_factory=list)
    """The job's EncodeSegment calls (encoder log): step, start and end from the phase's start,
    and the upscale calls of the next chunk that started before this call ended (the walker
    takes a chunk's batches from its dispatcher only once the previous chunk's encode call has
    returned, with one encoder replica)."""
    exhausted_calls: int = 0
    """Upscale calls a replica refused with RESOURCE_EXHAUSTED (retried by the channel)."""
    progress_updates: dict[str, float] = field(default_factory=dict)
    """The flow's progress artifact updates (:class:`ProgressTimer`)."""


def make_clip(path: Path, frames: int, width: int, height: int) -> Path:
    """A testsrc2 clip; its file name goes into its title, so every run is a job of its own."""
    subprocess.run(
        ["ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i", f"testsrc2=size={width}x{height}:rate=30",
         "-frames:v", str(frames), "-c:v", "libx264", "-crf", "18", "-pix_fmt", "yuv420p",
         "-metadata", f"title={path.stem}", str(path)],
        check=True,
    )  # fmt: skip
    return path


def start_replica(index: int, root: Path, env: dict[str, str], latency: float) -> Server:
    port, metrics_port = free_ports(2)
    log = root / f"upscaler-fixed-{index}.log"
    command = [sys.executable, str(REPO / "bench" / "fixed_latency.py"), "--port", str(port)]
    command += ["--metrics-port", str(metrics_port), "--latency", str(latency), "--trace", str(trace_path(root, index))]
    with log.open("wb") as handle:
        process = subprocess.Popen(command, stdout=handle, stderr=subprocess.STDOUT, env=env)
    return Server("upscaler", port, metrics_port, process, log, time.perf_counter())


def trace_path(root: Path, index: int) -> Path:
    return root / f"upscaler-fixed-{index}.trace.jsonl"


def read_trace(path: Path, job: str) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    calls = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return sorted((c for c in calls if c["job"] == job), key=lambda c: c["start"])


def busy_seconds(server: Server) -> float:
    return server.metric("silkpurse_batch_seconds_sum", stage="upscale")


def exhausted(server: Server) -> float:
    return server.metric("silkpurse_calls_total", method="Upscale", code="RESOURCE_EXHAUSTED")


def extracted_at(log: Path, job: str) -> dict[str, float]:
    """When each of the job's batches reached the store, by its upscale step, from the
    extractor's log (``"msg": "batch"``, logged after the write)."""
    ready: dict[str, float] = {}
    for line in log.read_text(errors="replace").splitlines():
        if '"batch"' not in line or job not in line:
            continue
        try:
            entry = json.loads(line)
        except json.JSONDecodeError:
            continue
        if entry.get("msg") == "batch" and entry.get("job") == job and not entry.get("resumed"):
            chunk, batch = entry["step"].split("/")[0], Path(entry["key"]).name.split(".")[0]
            ready[f"{chunk}/upscale/{batch}"] = datetime.fromisoformat(entry["ts"]).timestamp()
    return ready


def encode_calls(log: Path, job: str, calls: list[dict[str, Any]], phase_start: float) -> list[dict[str, Any]]:
    """The job's EncodeSegment calls from the encoder's log, against the upscale calls."""
    found = []
    for line in log.read_text(errors="replace").splitlines():
        if "EncodeSegment" not in line or job not in line:
            continue
        try:
            entry = json.loads(line)
        except json.JSONDecodeError:
            continue
        if entry.get("msg") == "call" and entry.get("job") == job and entry.get("method") == "EncodeSegment":
            end = datetime.fromisoformat(entry["ts"]).timestamp()
            chunk = int(entry["step"].split("/")[0].lstrip("c"))
            following = [c for c in calls if c["step"].startswith(f"c{chunk + 1:05d}/")]
            found.append(
                {
                    "step": entry["step"],
                    "start_s": round(end - entry["seconds"] - phase_start, 3),
                    "end_s": round(end - phase_start, 3),
                    "next_chunk_calls_before_end": sum(1 for c in following if c["start"] < end),
                    "next_chunk_calls": len(following),
                }
            )
    return found


def starvation(traces: list[list[dict[str, Any]]], ready: dict[str, float], step_s: float = 0.005) -> dict[str, float]:
    """Idle replica time with and without a batch waiting for it (see :attr:`Run.starved`)."""
    calls = [c for trace in traces for c in trace]
    if not calls or not ready:
        return {}
    begin, end = min(c["start"] for c in calls), max(c["end"] for c in calls)
    waiting = [(ready[c["step"]], c["start"]) for c in calls if c["step"] in ready]
    with_work = without_work = all_idle = 0.0
    t = begin
    while t < end:
        idle = sum(1 for trace in traces if not any(c["start"] <= t < c["end"] for c in trace))
        pending = sum(1 for r, s in waiting if r <= t < s)
        busy_anywhere = idle < len(traces)
        with_work += min(idle, pending) * step_s
        without_work += max(0, idle - pending) * step_s
        all_idle += 0.0 if busy_anywhere else step_s
        t += step_s
    lags = [1000 * (s - r) for r, s in waiting]
    return {
        "matched": len(waiting),
        "idle_batch_ready_s": round(with_work, 3),
        "idle_nothing_ready_s": round(without_work, 3),
        "all_idle_s": round(all_idle, 3),
        "ready_to_start_median_ms": round(statistics.median(lags), 1) if lags else 0.0,
        "ready_to_start_p90_ms": round(percentile(lags, 0.9), 1),
    }


def percentile(values: list[float], q: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


class ProgressTimer:
    """Times the flow's progress artifact updates (``FlowReporter.publish_progress``, one
    Prefect API call about once a second, from the reporter's own thread since 836d08e, so no
    stage call waits for it; they still share the flow process's 2 cores). Wraps the method
    with a clock and changes nothing it does."""

    def __init__(self) -> None:
        from silkpurse_orchestrator.report import FlowReporter

        self.samples: list[float] = []
        publish = FlowReporter.publish_progress

        def timed(reporter: Any) -> None:
            started = time.perf_counter()
            try:
                publish(reporter)
            finally:
                self.samples.append(time.perf_counter() - started)

        FlowReporter.publish_progress = timed  # type: ignore[method-assign]

    def take(self) -> dict[str, float]:
        samples, self.samples = self.samples, []
        ms = [1000 * v for v in samples]
        return {
            "n": len(ms),
            "median_ms": round(statistics.median(ms), 1) if ms else 0.0,
            "max_ms": round(max(ms), 1) if ms else 0.0,
            "total_s": round(sum(samples), 3),
        }


def task_runs(flow_run_id: Any, expected: int, wait_s: float = 20.0) -> list[Any]:
    """The flow run's finished task runs, once the server has recorded at least ``expected``
    (task runs reach the server as events, a little after the flow returns)."""
    from prefect import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    deadline = time.monotonic() + wait_s
    with get_client(sync_client=True) as client:
        while True:
            runs: list[Any] = []
            while True:
                page = client.read_task_runs(
                    flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id])), limit=200, offset=len(runs)
                )
                runs.extend(page)
                if len(page) < 200:
                    break
            finished = [r for r in runs if r.start_time is not None and r.end_time is not None]
            if len(finished) >= expected or time.monotonic() > deadline:
                return finished
            time.sleep(0.5)


def run_one(
    k: int,
    calls_per_replica: int,
    progress: ProgressTimer,
    replicas: list[Server],
    extractor: Server,
    encoder: Server,
    root: Path,
    flow_env: dict[str, str],
    args: argparse.Namespace,
) -> Run:
    from silkpurse_orchestrator.flow import enhance_video

    from silkpurse.settings import get_settings

    used = replicas[:k]
    frames = k * args.batches_per_replica * args.batch_size
    name = f"k{k}-c{calls_per_replica}"
    clip = make_clip(root / f"clip-{name}.mp4", frames, args.width, args.height)
    os.environ.update(flow_env)
    os.environ["SILKPURSE_UPSCALER_ADDR"] = ",".join(r.address for r in used)
    os.environ["SILKPURSE_CALLS_PER_REPLICA"] = str(calls_per_replica)
    os.environ["SILKPURSE_WORK_DIR"] = str(root / f"flow-work-{name}")
    get_settings.cache_clear()  # the flow reads its settings from the environment
    progress.take()
    busy_before = [busy_seconds(r) for r in used]
    exhausted_before = sum(exhausted(r) for r in used)
    started_wall, started = time.time(), time.perf_counter()
    state = enhance_video(
        input=str(clip),
        output=str(root / f"out-{name}.mp4"),
        scale=2,
        upscale_model=model_name(args.latency),
        interpolate=args.interpolate,
        batch_size=args.batch_size,
        chunk_frames=args.chunk_frames,
        return_state=True,
    )
    flow_s = time.perf_counter() - started
    result = state.result()
    job = result["job"]
    busy = [busy_seconds(r) - b for r, b in zip(used, busy_before, strict=True)]
    traces = [read_trace(trace_path(root, replicas.index(r)), job) for r in used]
    calls = [c for trace in traces for c in trace]
    phase_start, phase_end = min(c["start"] for c in calls), max(c["end"] for c in calls)
    phase_s = phase_end - phase_start
    upscaled = sum(c["frames"] for c in calls if not c["resumed"])
    gaps = [
        later["start"] - earlier["end"]
        for trace in traces
        for earlier, later in zip(trace, trace[1:], strict=False)
        if later["start"] > earlier["end"]
    ]
    lead_in = [trace[0]["start"] - phase_start for trace in traces if trace]
    tail = [phase_end - trace[-1]["end"] for trace in traces if trace]
    run = Run(
        replicas=k,
        calls_per_replica=calls_per_replica,
        frames=upscaled,
        batches=len(calls),
        flow_s=round(flow_s, 3),
        phase_s=round(phase_s, 3),
        frames_per_s=round(upscaled / phase_s, 3),
        busy_s=round(sum(busy), 3),
        engine_s=round(sum(c["engine_s"] for c in calls), 3),
        utilisation=round(sum(busy) / (k * phase_s), 4),
        per_replica_calls=[len(t) for t in traces],
        per_replica_busy_s=[round(b, 3) for b in busy],
        first_call_after_s=round(phase_start - started_wall, 3),
        idle_s=round(k * phase_s - sum(busy), 3),
        idle_gaps={
            "between_calls_s": round(sum(gaps), 3),
            "count": len(gaps),
            "median_ms": round(1000 * statistics.median(gaps), 1) if gaps else 0.0,
            "max_ms": round(1000 * max(gaps), 1) if gaps else 0.0,
            "lead_in_s": round(sum(lead_in), 3),
            "tail_s": round(sum(tail), 3),
        },
        starved=starvation(traces, extracted_at(extractor.log, job)),
        encode_calls=encode_calls(encoder.log, job, calls, phase_start),
        exhausted_calls=int(sum(exhausted(r) for r in used) - exhausted_before),
        progress_updates=progress.take(),
    )
    if not args.no_prefect_services:  # without its services the server records no task runs
        _task_evidence(run, state.state_details.flow_run_id, calls, phase_end)
    return run


def _task_evidence(run: Run, flow_run_id: Any, calls: list[dict[str, Any]], phase_end: float) -> None:
    """Prefect's view of the same work: how long each upscale task run took around its call."""
    by_step = {c["step"]: c for c in calls}
    before, after = [], []
    extract_start, extract_end = None, None
    for task_run in task_runs(flow_run_id, expected=len(calls)):
        start, end = task_run.start_time.timestamp(), task_run.end_time.timestamp()
        if "/extract" in task_run.name:
            extract_start = start if extract_start is None else min(extract_start, start)
            extract_end = end if extract_end is None else max(extract_end, end)
        call = by_step.get(task_run.name)
        if call is not None:
            before.append(1000 * (call["start"] - start))
            after.append(1000 * (end - call["end"]))
    if extract_start is not None and extract_end is not None:
        run.extract_s = round(extract_end - extract_start, 3)
        run.extract_done_before_phase_end_s = round(phase_end - extract_end, 3)
    run.task_overhead = {
        "matched": len(before),
        "before_call_median_ms": round(statistics.median(before), 1) if before else 0.0,
        "before_call_p90_ms": round(percentile(before, 0.9), 1),
        "after_call_median_ms": round(statistics.median(after), 1) if after else 0.0,
        "after_call_p90_ms": round(percentile(after, 0.9), 1),
    }


def print_table(runs: list[Run], latency: float) -> None:
    print(f"\nfixed latency {latency:g} s per batch; targets: ratio >= {TARGET_SPEEDUP_RATIO}, "
          f"utilisation >= {TARGET_UTILISATION:.0%}")  # fmt: skip
    print(
        f"{'K':>2} {'calls/rep':>9} {'batches':>7} {'phase s':>7} {'frames/s':>8} {'speed-up':>8} {'ratio':>5} "
        f"{'util':>6} {'flow s':>6} {'1st call s':>10} {'gaps s':>6} {'lead-in s':>9} {'tail s':>6} "
        f"{'before ms':>9} {'extract s':>9} {'refused':>7} {'idle, batch ready s':>19} {'all idle s':>10}"
    )
    for r in runs:
        print(
            f"{r.replicas:>2} {r.calls_per_replica:>9} {r.batches:>7} {r.phase_s:>7.2f} {r.frames_per_s:>8.2f} "
            f"{r.speedup:>8.2f} {r.ratio:>5.2f} {r.utilisation:>6.1%} {r.flow_s:>6.1f} {r.first_call_after_s:>10.2f} "
            f"{r.idle_gaps.get('between_calls_s', 0):>6.2f} {r.idle_gaps.get('lead_in_s', 0):>9.2f} "
            f"{r.idle_gaps.get('tail_s', 0):>6.2f} {r.task_overhead.get('before_call_median_ms', 0):>9.0f} "
            f"{r.extract_s:>9.2f} {r.exhausted_calls:>7} {r.starved.get('idle_batch_ready_s', 0):>19.2f} "
            f"{r.starved.get('all_idle_s', 0):>10.2f}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--replicas", default="1,2,4,8", help="Replica counts K to run, comma-separated.")
    parser.add_argument("--latency", type=float, default=0.4, help="Seconds per batch of the fixed-latency engine.")
    parser.add_argument("--calls-per-replica", default="2", help="SILKPURSE_CALLS_PER_REPLICA values, comma-separated.")
    parser.add_argument(
        "--no-prefect-services",
        action="store_true",
        help="Start the Prefect server with --no-services (no event persister or task run recorder).",
    )
    parser.add_argument("--batches-per-replica", type=int, default=15)
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--chunk-frames", type=int, default=300)
    parser.add_argument("--interpolate", type=int, default=1, help="> 1 also starts the (real) interpolator.")
    parser.add_argument("--width", type=int, default=64)
    parser.add_argument("--height", type=int, default=48)
    parser.add_argument("--json", type=Path, default=None, help="Write the runs and the setup here.")
    parser.add_argument("--keep", type=Path, default=None, help="Keep logs and traces in this folder.")
    args = parser.parse_args()
    variants = [int(c) for c in args.calls_per_replica.split(",")]
    counts = [int(k) for k in args.replicas.split(",")]
    load_before = os.getloadavg()
    began = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="bench-scaling-") as tmp_name:
        root = args.keep or Path(tmp_name)
        root.mkdir(parents=True, exist_ok=True)
        prefect = start_prefect_server(root, services=not args.no_prefect_services)
        try:
            with s3_server(root / "s3") as s3:
                runs = _run_all(root, s3, counts, variants, args)
        finally:
            prefect.stop()
            if _OWN_PREFECT_HOME:
                shutil.rmtree(os.environ["PREFECT_HOME"], ignore_errors=True)
    total_s = time.perf_counter() - began
    for calls in variants:
        same = [r for r in runs if r.calls_per_replica == calls]
        base = next((r for r in same if r.replicas == 1), None)
        for r in same:
            if base is not None:
                r.speedup = round(r.frames_per_s / base.frames_per_s, 3)
                r.ratio = round(r.speedup / r.replicas, 3)
    print_table(runs, args.latency)
    load_after = os.getloadavg()
    print(f"whole benchmark: {total_s:.0f} s; load average before {load_before[0]:.1f}, after {load_after[0]:.1f}")
    if args.json:
        setup = {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()}
        args.json.write_text(
            json.dumps(
                {
                    "date": datetime.now(UTC).isoformat(timespec="seconds"),
                    "machine": f"{platform.node()}, {os.cpu_count()} cores",
                    "load_average_before_after": [load_before, load_after],
                    "setup": setup,
                    "seconds": round(total_s, 1),
                    "runs": [asdict(r) for r in runs],
                },
                indent=2,
            )
        )


def _run_all(root: Path, s3: Any, counts: list[int], variants: list[int], args: argparse.Namespace) -> list[Run]:
    # The tests fail fast on a stopped S3 server; a benchmark on a busy machine waits instead.
    env = service_env(root, s3, SILKPURSE_S3_RETRIES="3", SILKPURSE_S3_TIMEOUT_S="30")
    stages = ["extractor", "encoder"] + (["interpolator"] if args.interpolate > 1 else [])
    servers = {s: start(s, root, {**env, "SILKPURSE_WORK_DIR": str(root / f"work-{s}")}) for s in stages}
    replicas = [start_replica(i, root, {**env, "OMP_NUM_THREADS": "1"}, args.latency) for i in range(max(counts))]
    try:
        started = time.perf_counter()
        wait_serving(*servers.values(), *replicas)
        print(f"services ready in {time.perf_counter() - started:.1f} s ({len(replicas)} fixed-latency replicas)")
        flow_env = {k: v for k, v in env.items() if k.startswith("SILKPURSE_")}
        flow_env.update({f"SILKPURSE_{s.upper()}_ADDR": servers[s].address for s in servers})
        progress = ProgressTimer()
        runs = []
        for calls in variants:
            for k in counts:
                run = run_one(
                    k, calls, progress, replicas, servers["extractor"], servers["encoder"], root, flow_env, args
                )
                updates = run.progress_updates
                print(
                    f"K={k} calls/replica={calls}: {run.batches} batches in {run.phase_s:.2f} s "
                    f"({run.frames_per_s:.1f} frames/s), utilisation {run.utilisation:.1%}, flow {run.flow_s:.1f} s, "
                    f"refused {run.exhausted_calls}, "
                    f"idle with a batch ready {run.starved.get('idle_batch_ready_s', 0):.2f} s, "
                    f"encode calls (from phase start) {[(e['start_s'], e['end_s']) for e in run.encode_calls]}, "
                    f"progress updates {updates.get('n', 0):.0f} x median {updates.get('median_ms', 0):.0f} ms "
                    f"(max {updates.get('max_ms', 0):.0f})",
                    flush=True,
                )
                runs.append(run)
        return runs
    finally:
        for server in [*servers.values(), *replicas]:
            stop(server)


if __name__ == "__main__":
    main()
