"""Progress reporting: the pipeline reports per-stage frame counts; the CLI draws them."""

from __future__ import annotations

from typing import Protocol


class Reporter(Protocol):
    """Called from several threads at once (the walker's decode, model and encode threads)."""

    def stage(self, name: str, total: int) -> None:
        """Announce a stage and how many frames it will produce."""

    def advance(self, name: str, frames: int, *, resumed: bool = False) -> None:
        """``frames`` more frames done by ``name`` (``resumed``: found finished in the store)."""

    def note(self, message: str) -> None:
        """A remark for the user (a dropped stream, a converted frame rate...)."""


class SilentReporter:
    def stage(self, name: str, total: int) -> None:
        pass

    def advance(self, name: str, frames: int, *, resumed: bool = False) -> None:
        pass

    def note(self, message: str) -> None:
        pass
