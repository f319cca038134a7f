"""One settings object for every configurable value (environment prefix ``SILKPURSE_``)."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from platformdirs import user_cache_path
from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

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
    download_timeout_s: float = Field(default=60.0, gt=0)
    ffmpeg: str = "ffmpeg"
    ffprobe: str = "ffprobe"


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
