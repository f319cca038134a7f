"""The job's input, local to a service: the extractor and the encoder read the source video
from the store (``inputs/<sha256><ext>``, uploaded by the client) into a private scratch
folder, verify its sha256 once, and keep it for the following calls of the job (and of any job
of the same input: the file is named by its content)."""

from __future__ import annotations

import os
import shutil
import tempfile
import threading
from collections import defaultdict
from pathlib import Path

from silkpurse.errors import StoreError
from silkpurse.files import sha256_of
from silkpurse.service.messages import check_input_key
from silkpurse.store import BatchStore


class InputCache:
    """Verified local copies of input objects, in a folder of this process's own."""

    def __init__(self, store: BatchStore, parent: Path, keep: int = 4) -> None:
        self.store = store
        parent.mkdir(parents=True, exist_ok=True)
        self.root = Path(tempfile.mkdtemp(prefix=f".inputs-{os.getpid()}-", dir=parent))
        self.keep = keep
        self._locks: defaultdict[str, threading.Lock] = defaultdict(threading.Lock)
        self._guard = threading.Lock()
        self._order: list[Path] = []

    def local(self, key: str) -> Path:
        """A local, verified copy of the input object ``key`` (downloaded at most once)."""
        sha256 = check_input_key(key)
        path = self.root / key.removeprefix("inputs/")
        with self._guard:
            lock = self._locks[sha256]
        with lock:
            if path.exists():
                return path
            partial = path.with_name(f".{path.name}.part")
            self.store.download(key, partial)
            actual = sha256_of(partial)
            if actual != sha256:
                partial.unlink(missing_ok=True)
                raise StoreError(
                    f"input object {key} is corrupt (its sha256 is {actual[:12]}...)", "upload the input again"
                )
            partial.replace(path)
        with self._guard:
            self._order.append(path)
            while len(self._order) > self.keep:
                self._order.pop(0).unlink(missing_ok=True)
        return path

    def close(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)
