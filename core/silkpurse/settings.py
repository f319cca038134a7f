"""One settings object for every configurable value (environment prefix ``SILKPURSE_``)."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from platformdirs import user_cache_path
from pydantic import Field, SecretStr, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict

from silkpurse.errors import OptionsError

DeviceName = Literal["auto", "cpu", "cuda"]


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="SILKPURSE_", extra="ignore")

    models_dir: Path = Field(
        default_factory=lambda: user_cache_path("silkpurse") / "models",
        description="Where model weights are cached; containers mount this.",
    )
    work_dir: Path = Field(
        default_factory=lambda: user_cache_path("silkpurse") / "work",
        description="Where the embedded pipeline keeps frame batches between stages.",
    )
    device: DeviceName = "auto"
    batch_size: int = Field(default=8, ge=1, le=1024)
    download_timeout_s: float = Field(
        default=60.0, gt=0, description="Longest wait for a connection or for the next bytes of a download."
    )
    # Inputs from the network (silkpurse.fetch; docs: README, "Inputs from the network").
    max_download_bytes: int = Field(
        default=20 * 10**9, ge=1, description="Largest input downloaded from a URL or s3:// URI (20 GB)."
    )
    download_retries: int = Field(
        default=3, ge=0, le=10, description="Retries of a dropped or timed-out download, each resuming it."
    )
    max_redirects: int = Field(default=5, ge=0, le=20, description="Most HTTP redirects an input URL may follow.")
    s3_input_buckets: str = Field(
        default="",
        description="Comma list of buckets besides s3_bucket that s3:// inputs may be read from.",
    )
    s3_output_buckets: str = Field(
        default="",
        description="Comma list of buckets besides s3_bucket that s3:// outputs may be written to.",
    )
    ffmpeg: str = "ffmpeg"
    ffprobe: str = "ffprobe"

    store_dir: Path | None = Field(
        default=None,
        description="Shared directory of the batch store when no S3 endpoint is set; default: the work directory.",
    )
    # Where the remote runner (`enhance --remote`) finds each stage's service: host:port, a comma
    # list of replicas, or a dns:/// name (balanced per call, failed calls retried on another).
    extractor_addr: str = "127.0.0.1:50051"
    upscaler_addr: str = "127.0.0.1:50052"
    interpolator_addr: str = "127.0.0.1:50053"
    encoder_addr: str = "127.0.0.1:50054"
    calls_per_replica: int = Field(
        default=2,
        ge=1,
        le=16,
        description="Model calls a remote job keeps in flight per replica: 2 keeps one queued behind the running one.",
    )
    # The object store of the services (silkpurse.s3.S3Store, chosen by silkpurse.store.open_store
    # when s3_endpoint is set; see docs/architecture.md, "Object store").
    s3_endpoint: str | None = Field(default=None, description="host:port of an S3/MinIO server, no scheme.")
    s3_access_key: SecretStr | None = None
    s3_secret_key: SecretStr | None = None
    s3_bucket: str = Field(default="silkpurse", min_length=3, max_length=63)
    s3_secure: bool | None = Field(
        default=None, description="HTTPS; unset means HTTPS except for a loopback endpoint (a local dev server)."
    )
    s3_region: str | None = None
    s3_retries: int = Field(default=4, ge=0, le=10, description="Retries of a refused, timed-out or 5xx request.")
    s3_timeout_s: float = Field(default=10.0, gt=0, le=300, description="Read timeout of one request.")
    s3_part_size_mib: int = Field(default=16, ge=5, le=5120, description="Multipart part size for large objects.")

    # Limits on inputs, checked when they are probed, before any work (docs/reliability.md).
    max_pixels: int = Field(
        default=8192 * 4320, ge=1, description="Most pixels per input frame or image (8K: 8192x4320)."
    )
    max_dimension: int = Field(default=16384, ge=1, description="Widest or tallest input frame or image, in pixels.")
    max_frames: int = Field(default=2_000_000, ge=1, description="Most frames an input may yield (9 h at 60 fps).")
    max_duration_s: float = Field(default=24 * 3600.0, gt=0, description="Longest input, in seconds.")
    max_rate: float = Field(default=1000.0, gt=0, description="Highest input frame rate, in frames per second.")
    max_vfr_expansion: float = Field(
        default=10.0,
        ge=1,
        description="Variable-rate input: most frames the constant-rate conversion may make per frame in the file.",
    )


def env_name(field_name: str) -> str:
    """The environment variable that sets ``field_name``."""
    return f"SILKPURSE_{field_name.upper()}"


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The settings from the environment; an invalid value is an :class:`OptionsError` naming its
    variable."""
    try:
        return Settings()
    except ValidationError as err:
        first = err.errors()[0]
        name = str(first["loc"][0]) if first.get("loc") else "?"
        value = first.get("input")
        secret = "key" in name or "secret" in name
        shown = value if isinstance(value, str | int | float) and not secret else "this value"
        raise OptionsError(
            f"{env_name(name)}={shown!s} is invalid ({first.get('msg', 'invalid value')})",
            f"fix or unset {env_name(name)}",
        ) from None
