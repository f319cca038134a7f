"""Batch stores: where frame batches live between stages, under deterministic keys.

A key names what a batch *is*, so the same work always lands on the same key and finished
work is found again after an interruption::

    <input sha256[:32]>/<stage>-<parameters digest>/<batch index:06d>.spfb

The parameters digest chains the upstream stage's digest, so changing an upscaler option
also invalidates the interpolated batches built on it. :class:`LocalStore` is the embedded
mode's store; the services use the same interface over S3/MinIO.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from silkpurse.batch import FrameBatch
from silkpurse.errors import StoreError
from silkpurse.files import write_atomically

_KEY = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._=-]{0,127}(/[A-Za-z0-9][A-Za-z0-9._=-]{0,127}){0,7}$")


def validate_key(key: str) -> str:
    """Accept only plain relative keys: no empty, ``.``/``..`` or hidden segments."""
    if not _KEY.fullmatch(key) or any(part in (".", "..") for part in key.split("/")):
        raise StoreError(f"invalid batch key {key!r}", "keys are relative paths of letters, digits and ._=-")
    return key


def digest(params: Mapping[str, Any]) -> str:
    return hashlib.sha256(json.dumps(params, sort_keys=True, default=str).encode()).hexdigest()[:16]


@dataclass(frozen=True)
class StageKeys:
    prefix: str
    params_digest: str

    def batch(self, index: int) -> str:
        return validate_key(f"{self.prefix}/{index:06d}.spfb")

    def then(self, stage: str, params: Mapping[str, Any]) -> StageKeys:
        """Keys of a stage that consumes this one's batches."""
        job = self.prefix.split("/", 1)[0]
        chained = digest({"upstream": self.params_digest, **params})
        return StageKeys(f"{job}/{stage}-{chained}", chained)


def job_keys(input_digest: str, stage: str, params: Mapping[str, Any]) -> StageKeys:
    params_digest = digest(params)
    return StageKeys(validate_key(f"{input_digest}/{stage}-{params_digest}"), params_digest)


class BatchStore(ABC):
    """Bytes under keys; batches are encoded and verified on the way in and out."""

    @abstractmethod
    def put(self, key: str, data: bytes) -> None: ...

    @abstractmethod
    def get(self, key: str) -> bytes: ...

    @abstractmethod
    def exists(self, key: str) -> bool: ...

    @abstractmethod
    def delete_prefix(self, prefix: str) -> None: ...

    def put_batch(self, key: str, batch: FrameBatch) -> None:
        self.put(key, batch.to_bytes())

    def get_batch(self, key: str) -> FrameBatch:
        return FrameBatch.from_bytes(self.get(key), what=f"batch {key}")


class LocalStore(BatchStore):
    """Batches as files under a directory; each write is atomic (temp file, then rename)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        try:
            root.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise StoreError(
                f"cannot create work directory {root} ({err.strerror})", "set --work-dir or SILKPURSE_WORK_DIR"
            ) from None

    def _path(self, key: str) -> Path:
        return self.root / validate_key(key)

    def put(self, key: str, data: bytes) -> None:
        try:
            write_atomically(self._path(key), lambda tmp: tmp.write_bytes(data))
        except OSError as err:
            raise StoreError(
                f"cannot write batch {key} ({err.strerror})", "free disk space or choose another work dir"
            ) from None

    def get(self, key: str) -> bytes:
        try:
            return self._path(key).read_bytes()
        except FileNotFoundError:
            raise StoreError(f"batch {key} is not in the store", "run the producing stage first") from None

    def exists(self, key: str) -> bool:
        return self._path(key).is_file()

    def delete_prefix(self, prefix: str) -> None:
        shutil.rmtree(self._path(prefix), ignore_errors=True)
