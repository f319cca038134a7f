"""The one error hierarchy of silkpurse.

Every error a user can cause or fix is a :class:`SilkpurseError` whose message says what is
wrong and what to do, in one line. The CLI maps these to exit codes in one place
(:func:`silkpurse_cli.cli.main`); the gRPC servicers will map them to status codes in one place.
Anything else is a bug and keeps its traceback.
"""

from __future__ import annotations


class SilkpurseError(Exception):
    """Base of all expected errors. ``str(err)`` is the one-line message shown to users."""

    exit_code = 1
    retryable = False
    """True for transient failures (a store that is down or timed out): the same call may
    succeed later or on another replica. Everything else fails the same way every time."""

    def __init__(self, what: str, fix: str | None = None) -> None:
        self.what = what.rstrip(".")
        self.fix = fix
        super().__init__(str(self))

    def __str__(self) -> str:
        if not self.fix:
            return f"{self.what}."
        return f"{self.what}. {self.fix[0].upper()}{self.fix[1:].rstrip('.')}."


class OptionsError(SilkpurseError):
    """Options that are impossible or contradict each other."""

    exit_code = 2


class InputError(SilkpurseError):
    """The input is missing, empty, not a video, truncated or otherwise unusable."""

    exit_code = 3


class DownloadError(InputError):
    """An input URL could not be downloaded (no answer, refused, timed out, dropped, HTTP 5xx):
    worth retrying; a partial download is kept and resumed by the next try."""

    retryable = True


class OutputError(SilkpurseError):
    """The output cannot be written where asked."""

    exit_code = 4


class ModelError(SilkpurseError):
    """An unknown model, missing or corrupt weights, or a checkpoint of an unknown family."""

    exit_code = 5


class DeviceError(SilkpurseError):
    """The requested compute device is not available."""

    exit_code = 6


class StoreError(SilkpurseError):
    """The batch store is unreachable, or holds a missing or corrupt batch."""

    exit_code = 7


class StoreUnavailableError(StoreError):
    """The store did not answer (down, unreachable, timed out): worth retrying."""

    retryable = True


class MediaError(SilkpurseError):
    """ffmpeg failed on media that passed probing (a decode or encode error)."""

    exit_code = 8
