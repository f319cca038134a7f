"""Running ffmpeg graphs (built with ffmpeg-python) as piped subprocesses."""

from __future__ import annotations

import subprocess
import threading
from collections import deque
from typing import Any

from silkpurse.errors import MediaError
from silkpurse.settings import get_settings


class FfmpegProcess:
    """An ffmpeg process whose stderr is drained in the background (so pipes never deadlock)
    and kept, last lines only, for error messages."""

    def __init__(self, stream: Any, *, pipe_stdin: bool = False, pipe_stdout: bool = False) -> None:
        args = stream.global_args("-nostdin" if not pipe_stdin else "-hide_banner", "-v", "error").compile(
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
        self._reader = threading.Thread(target=self._drain, daemon=True)
        self._reader.start()

    def _drain(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self._stderr.append(line.decode(errors="replace").rstrip())

    def last_error(self) -> str:
        lines = [line for line in self._stderr if line.strip()]
        return lines[-1] if lines else "no message"

    def wait(self) -> int:
        code = self.proc.wait()
        self._reader.join(timeout=5)
        return code

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.wait()
