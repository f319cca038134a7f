"""Running ffmpeg graphs (built with ffmpeg-python) as piped subprocesses."""

from __future__ import annotations

import re
import subprocess
import threading
from collections import deque
from typing import Any

from silkpurse.errors import MediaError
from silkpurse.settings import get_settings

# ffmpeg runs with ``-loglevel level+error``: each of its own messages carries its level, e.g.
# ``[mp4 @ 0x...] [error] Error writing trailer: No space left on device``. Lines without a level
# come from libraries that print on their own (SVT-AV1's banner) and are not errors.
_LEVEL = re.compile(r"\[(panic|fatal|error)\] ?")
_CONTEXT = re.compile(r"^(\[[^\]]+ @ 0x[0-9a-f]+\] )+")
DISK_FULL = "No space left on device"


class FfmpegProcess:
    """An ffmpeg process whose stderr is drained in the background (so pipes never deadlock)
    and kept, last lines only, for error messages; every error-level line is kept apart, so a
    run that exits 0 after an error (ffmpeg 5.1 does after a failed trailer write) is caught."""

    def __init__(self, stream: Any, *, pipe_stdin: bool = False, pipe_stdout: bool = False) -> None:
        args = stream.global_args("-nostdin" if not pipe_stdin else "-hide_banner", "-v", "level+error").compile(
            cmd=get_settings().ffmpeg
        )
        try:
            self.proc = subprocess.Popen(
                args,
                stdin=subprocess.PIPE if pipe_stdin else subprocess.DEVNULL,
                stdout=subprocess.PIPE if pipe_stdout else subprocess.DEVNULL,
                stderr=subprocess.PIPE,
            )
        except FileNotFoundError:
            raise MediaError("ffmpeg was not found", "install ffmpeg (apt-get install ffmpeg)") from None
        self.args = args
        self._stderr: deque[str] = deque(maxlen=20)
        self.errors: deque[str] = deque(maxlen=20)
        """ffmpeg's error-level messages (level tag removed), last 20."""
        self._reader = threading.Thread(target=self._drain, daemon=True)
        self._reader.start()

    def _drain(self) -> None:
        assert self.proc.stderr is not None
        for raw in self.proc.stderr:
            line = raw.decode(errors="replace").rstrip()
            if _LEVEL.search(line):
                line = _LEVEL.sub("", line, count=1)
                self.errors.append(line)
            self._stderr.append(line)

    def last_error(self) -> str:
        lines = list(self.errors) or [line for line in self._stderr if line.strip()]
        return _CONTEXT.sub("", lines[-1]) if lines else "no message"

    def disk_full(self) -> bool:
        return any(DISK_FULL in line for line in self.errors)

    def wait(self) -> int:
        code = self.proc.wait()
        self._reader.join(timeout=5)
        return code

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.wait()
