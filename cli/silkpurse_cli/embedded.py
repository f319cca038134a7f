"""The embedded pipeline: extract -> upscale -> interpolate -> encode in one process.

It reads top to bottom like the service flow will: each stage turns frame batches into frame
batches, and every batch a model produced is kept in a :class:`~silkpurse.store.BatchStore`
under a deterministic key. Running the same command again after an interruption reuses every
finished batch; the work directory is removed after success unless ``keep_work``.

Threads overlap the parts: ffmpeg decoding, model inference (PyTorch releases the GIL) and
ffmpeg encoding each run in their own thread, joined by short queues.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING, Any

from silkpurse.batch import FrameBatch
from silkpurse.concurrency import background
from silkpurse.errors import OptionsError, StoreError
from silkpurse.files import sha256_of
from silkpurse.media.probe import VideoInfo, probe
from silkpurse.progress import Reporter, SilentReporter
from silkpurse.settings import Settings, get_settings
from silkpurse.store import BatchStore, LocalStore, StageKeys, job_keys

if TYPE_CHECKING:
    from silkpurse_interpolator.engine import Interpolator
    from silkpurse_upscaler.engine import Upscaler

DEFAULT_UPSCALE_MODEL = "realesr-animevideov3"
DEFAULT_INTERP_MODEL = "rife-hdv3"


@dataclass(frozen=True)
class EnhanceOptions:
    scale: int = 2
    upscale_model: str = DEFAULT_UPSCALE_MODEL
    tile: int | None = None
    denoise_strength: float | None = None
    interpolate: int = 2
    fps: Fraction | None = None
    interp_model: str = DEFAULT_INTERP_MODEL
    rife_scale: float = 1.0
    scene_threshold: float | None = None
    codec: str = "h264"
    crf: int | None = None
    preset: str | None = None
    ten_bit: bool | None = None
    batch_size: int | None = None
    device: str | None = None
    keep_work: bool = False
    work_dir: Path | None = None

    def validate(self) -> None:
        if self.scale not in (1, 2, 3, 4):
            raise OptionsError(f"--scale {self.scale} is not supported", "use 1, 2, 3 or 4")
        if self.interpolate < 1:
            raise OptionsError(f"--interpolate {self.interpolate} is impossible", "use 1 (off) or a multiplier >= 2")
        if self.fps is not None and self.fps <= 0:
            raise OptionsError(f"--fps {self.fps} is impossible", "give a positive frame rate such as 60 or 30000/1001")
        if self.fps is not None and self.interpolate > 1:
            raise OptionsError("--interpolate and --fps both set the output frame rate", "give only one of them")
        if self.batch_size is not None and not 1 <= self.batch_size <= 1024:
            raise OptionsError(f"--batch-size {self.batch_size} is out of range", "use 1..1024")
        if self.rife_scale not in (0.25, 0.5, 1.0, 2.0, 4.0):
            raise OptionsError(f"--rife-scale {self.rife_scale} is not supported", "use 0.25, 0.5, 1, 2 or 4")
        if self.tile is not None and self.tile < 0:
            raise OptionsError(f"--tile {self.tile} is impossible", "use 0 (off) or a tile size in pixels")
        self.encode_options().validate()

    def encode_options(self) -> Any:
        from silkpurse_encoder.encode import EncodeOptions

        return EncodeOptions(codec=self.codec, crf=self.crf, preset=self.preset, ten_bit=self.ten_bit)

    def output_rate(self, rate: Fraction) -> Fraction:
        if self.fps is not None:
            if self.fps < rate:
                raise OptionsError(
                    f"--fps {float(self.fps):g} is below the input's {float(rate):g} fps",
                    "silkpurse adds frames; to drop frames use ffmpeg's fps filter",
                )
            return self.fps
        return rate * self.interpolate


@dataclass
class EnhanceResult:
    input: str
    output: str
    frames_in: int
    frames_out: int
    rate_in: str
    rate_out: str
    size_in: tuple[int, int]
    size_out: tuple[int, int]
    duration_in: float
    duration_out: float
    seconds: float
    batches_computed: int = 0
    batches_resumed: int = 0
    cuts: list[int] = field(default_factory=list)
    duplicates: list[int] = field(default_factory=list)
    streams_copied: list[str] = field(default_factory=list)
    streams_reencoded: list[str] = field(default_factory=list)
    streams_dropped: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def fps(self) -> float:
        return self.frames_out / self.seconds if self.seconds else 0.0

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "output_fps": round(self.fps, 3)}


class Pipeline:
    """One enhance job: holds the probed input, the engines and the store keys."""

    def __init__(
        self,
        source: Path,
        output: Path,
        options: EnhanceOptions,
        *,
        reporter: Reporter | None = None,
        settings: Settings | None = None,
    ) -> None:
        from silkpurse_encoder.encode import check_output

        options.validate()
        self.settings = settings or get_settings()
        self.options = options
        self.source = source
        self.output = output
        self.reporter = reporter or SilentReporter()
        self.info: VideoInfo = probe(source)
        check_output(output, source)
        self.out_rate = options.output_rate(self.info.rate)
        self.batch_size = options.batch_size or self.settings.batch_size
        self.upscaler = self._load_upscaler()
        self.interpolator = self._load_interpolator()
        self.work_dir = options.work_dir or self.settings.work_dir
        self.store: BatchStore = LocalStore(self.work_dir)
        self.job = sha256_of(source)[:32]
        self.computed = 0
        self.resumed = 0
        self.cuts: list[int] = []
        self.duplicates: list[int] = []

    # -- set-up -----------------------------------------------------------------------------
    def _device(self) -> str:
        return self.options.device or self.settings.device

    def _load_upscaler(self) -> Upscaler | None:
        if self.options.scale == 1:
            return None
        from silkpurse_upscaler.engine import Upscaler

        return Upscaler(
            self.options.upscale_model,
            scale=self.options.scale,
            device=self._device(),
            tile=self.options.tile,
            denoise_strength=self.options.denoise_strength,
        )

    def _load_interpolator(self) -> Interpolator | None:
        if self.out_rate == self.info.rate:
            return None
        from silkpurse_interpolator.engine import Interpolator

        return Interpolator(self.options.interp_model, device=self._device(), rife_scale=self.options.rife_scale)

    @property
    def frames_out(self) -> int:
        if self.interpolator is None:
            return self.info.frame_count
        from silkpurse_interpolator.timing import output_count

        return output_count(self.info.frame_count, self.info.rate, self.out_rate)

    @property
    def size_out(self) -> tuple[int, int]:
        return self.info.width * self.options.scale, self.info.height * self.options.scale

    # -- the story ----------------------------------------------------------------------------
    def run(self) -> EnhanceResult:
        from silkpurse_encoder.encode import Encoder, encode_batches

        started = time.perf_counter()
        info, opts = self.info, self.options
        self._check_disk_space()
        self.reporter.stage("decode", info.frame_count)
        if self.upscaler is not None:
            self.reporter.stage("upscale", info.frame_count)
        if self.interpolator is not None:
            self.reporter.stage("interpolate", self.frames_out)
        self.reporter.stage("encode", self.frames_out)
        if info.vfr:
            self.reporter.note(f"variable frame rate input: converted to a constant {float(info.rate):g} fps")

        frames = background(self._decoded(), name="decode")
        frames = self._upscaled(frames)
        frames = self._interpolated(frames)
        width, height = self.size_out
        encoder = Encoder(
            self.output,
            info,
            width=width,
            height=height,
            rate=self.out_rate,
            sixteen_bit=info.bit_depth > 8,
            options=opts.encode_options(),
        )
        report = encode_batches(self._counted(background(frames, name="compute"), "encode"), self.output, encoder)
        if not opts.keep_work:
            self.store.delete_prefix(self.job)
        for message in report.dropped_streams:
            self.reporter.note(f"dropped {message}")
        out_info = probe(self.output)
        return EnhanceResult(
            input=str(self.source),
            output=str(self.output),
            frames_in=info.frame_count,
            frames_out=report.frames,
            rate_in=_rate(info.rate),
            rate_out=_rate(self.out_rate),
            size_in=(info.width, info.height),
            size_out=self.size_out,
            duration_in=round(info.duration, 6),
            duration_out=round(out_info.duration, 6),
            seconds=round(time.perf_counter() - started, 3),
            batches_computed=self.computed,
            batches_resumed=self.resumed,
            cuts=self.cuts,
            duplicates=self.duplicates,
            streams_copied=report.copied_streams,
            streams_reencoded=report.reencoded_streams,
            streams_dropped=report.dropped_streams,
            notes=[f"variable frame rate converted to {_rate(info.rate)} fps"] if info.vfr else [],
        )

    def work_bytes(self) -> int:
        """Bytes of frame batches this job keeps in the work directory until its encode ends."""
        width, height = self.size_out
        frame = width * height * 3 * (2 if self.info.bit_depth > 8 else 1)
        stored_frames = (self.info.frame_count if self.upscaler else 0) + (self.frames_out if self.interpolator else 0)
        return stored_frames * frame

    def _check_disk_space(self) -> None:
        """Fail before any work when the batches cannot fit, not hours later with a full disk."""
        already = sum(p.stat().st_size for p in (self.work_dir / self.job).rglob("*.spfb"))
        needed = self.work_bytes() - already
        free = shutil.disk_usage(self.work_dir).free
        if needed > free * 0.95:
            raise StoreError(
                f"this job keeps {needed / 1e9:.1f} GB of frame batches in {self.work_dir} until it is encoded, "
                f"but only {free / 1e9:.1f} GB are free",
                "point --work-dir (or SILKPURSE_WORK_DIR) at a larger disk, or process the video in parts",
            )

    def _decoded(self) -> Iterator[FrameBatch]:
        from silkpurse_extractor.extract import extract_batches

        return self._counted(extract_batches(self.info, self.batch_size), "decode")

    def _upscaled(self, batches: Iterator[FrameBatch]) -> Iterator[FrameBatch]:
        if self.upscaler is None:
            yield from batches
            return
        keys = self._upscale_keys()
        upscaler = self.upscaler
        for batch in batches:
            index = batch.first_index // self.batch_size
            yield self._cached(
                keys.batch(index),
                "upscale",
                lambda b=batch: FrameBatch(
                    upscaler.upscale(b.frames), b.first_index, b.rate, {**b.meta, "stage": "upscale"}
                ),
            )

    def _interpolated(self, batches: Iterator[FrameBatch]) -> Iterator[FrameBatch]:
        if self.interpolator is None:
            yield from batches
            return
        keys = self._interpolate_keys()
        previous: FrameBatch | None = None
        for batch in batches:
            if previous is not None:
                yield self._interpolate_one(keys, previous, batch.frames[0])
            previous = batch
        if previous is not None:
            yield self._interpolate_one(keys, previous, None)

    def _interpolate_one(self, keys: StageKeys, batch: FrameBatch, next_frame: Any) -> FrameBatch:
        from silkpurse_interpolator.stage import interpolate_batch

        assert self.interpolator is not None
        interpolator = self.interpolator

        def compute() -> FrameBatch:
            threshold = self.options.scene_threshold
            threshold_arg = {} if threshold is None else {"scene_threshold": threshold}
            result = interpolate_batch(
                batch,
                next_frame,
                total_frames=self.info.frame_count,
                out_rate=self.out_rate,
                interpolator=interpolator,
                **threshold_arg,
            )
            return FrameBatch(
                result.batch.frames,
                result.batch.first_index,
                result.batch.rate,
                {**result.batch.meta, "cuts": result.cuts, "duplicates": result.duplicates},
            )

        out = self._cached(keys.batch(batch.first_index // self.batch_size), "interpolate", compute)
        self.cuts.extend(out.meta.get("cuts", []))
        self.duplicates.extend(out.meta.get("duplicates", []))
        return out

    def _cached(self, key: str, stage: str, compute: Any) -> FrameBatch:
        """The batch under ``key`` if a previous run finished it, else computed and stored."""
        if self.store.exists(key):
            batch: FrameBatch = self.store.get_batch(key)
            self.resumed += 1
            self.reporter.advance(stage, len(batch), resumed=True)
            return batch
        batch = compute()
        self.store.put_batch(key, batch)
        self.computed += 1
        self.reporter.advance(stage, len(batch))
        return batch

    def _counted(self, batches: Iterator[FrameBatch], stage: str) -> Iterator[FrameBatch]:
        for batch in batches:
            self.reporter.advance(stage, len(batch))
            yield batch

    # -- keys -----------------------------------------------------------------------------------
    def _upscale_keys(self) -> StageKeys:
        assert self.upscaler is not None
        return job_keys(
            self.job,
            "upscale",
            {
                "batch_size": self.batch_size,
                "model": self.upscaler.model_name,
                "scale": self.options.scale,
                "tile": self.options.tile,
                "denoise": self.options.denoise_strength,
                "device": str(self.upscaler.device),
            },
        )

    def _interpolate_keys(self) -> StageKeys:
        assert self.interpolator is not None
        params = {
            "model": self.options.interp_model,
            "rate": _rate(self.out_rate),
            "rife_scale": self.options.rife_scale,
            "scene_threshold": self.options.scene_threshold,
            "device": str(self.interpolator.device),
        }
        if self.upscaler is None:
            return job_keys(self.job, "interpolate", {"batch_size": self.batch_size, **params})
        return self._upscale_keys().then("interpolate", params)


def enhance(source: Path, output: Path, options: EnhanceOptions, *, reporter: Reporter | None = None) -> EnhanceResult:
    """Run the whole pipeline on ``source`` and write ``output``."""
    return Pipeline(source, output, options, reporter=reporter).run()


def _rate(rate: Fraction) -> str:
    return f"{rate.numerator}/{rate.denominator}"
