"""Publishing an output file: the one way silkpurse writes a video or image the user asked for.

:func:`claim_output` takes an exclusive lock per output before any work, hands out a unique
hidden temporary name beside the output, and renames the temporary file into place only when
the writer calls :meth:`OutputClaim.publish` (after verifying it). On any failure, interruption
included, the temporary file and the lock file are removed; the output is either the complete
new file or whatever was there before. Nothing the user had is overwritten except the output
itself, and only by a complete file::

    with claim_output(output, inputs=[source]) as claim:   # OutputError at once if another run holds it
        write_something(claim.temp)
        claim.publish(verify=check_the_file)               # verify(temp), then rename into place

Names, beside ``OUT = NAME.EXT``:

- lock: ``.NAME.EXT.lock`` (``fcntl.flock``, non-blocking; it holds the holder's pid). A run
  killed with SIGKILL leaves the file but not the lock: the next run takes it over.
- temporary: ``.NAME.<random>.partial.EXT``, created exclusively (``O_EXCL``), so it can never be
  an existing file, let alone an input.

Claims are re-entrant within one thread: a claim of an output that the same thread already holds
shares the outer claim (one lock, one temporary name), so a runner can claim around a whole job
while the encoder inside claims too. A claim from another thread or process fails at once.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import os
import tempfile
import threading
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from silkpurse.errors import OutputError

_LOCK_TAG = "silkpurse pid "
_registry: dict[str, OutputClaim] = {}
_registry_lock = threading.Lock()


@dataclass
class OutputClaim:
    """A held claim on ``output``: write ``temp``, then :meth:`publish`."""

    output: Path
    """The final path (absolute)."""
    temp: Path
    """A unique hidden file beside the output, created empty; writers overwrite it."""
    lock_path: Path
    published: bool = False
    _fd: int = -1
    _owner: int = 0
    _depth: int = 1
    _inputs: list[Path] = field(default_factory=list)

    def publish(self, verify: Callable[[Path], None] | None = None) -> Path:
        """Call ``verify(temp)`` (it raises if the file is incomplete), then rename the temporary
        file to the output, atomically. Returns the output path."""
        if self.published:
            raise RuntimeError(f"{self.output} was already published by this claim")
        if verify is not None:
            verify(self.temp)
        try:
            with open(self.temp, "rb+") as f:
                os.fsync(f.fileno())
            self.temp.chmod(0o644)  # mkstemp made it private; outputs are shared files
            os.replace(self.temp, self.output)
        except OSError as err:
            raise output_error(self.output, err) from None
        with contextlib.suppress(OSError):
            _fsync_dir(self.output.parent)
        self.published = True
        return self.output

    def discard(self) -> None:
        """Remove the temporary file (a no-op after :meth:`publish`)."""
        if not self.published:
            with contextlib.suppress(FileNotFoundError):
                self.temp.unlink()


@contextlib.contextmanager
def claim_output(output: Path | str, *, inputs: Iterable[Path | str] = ()) -> Iterator[OutputClaim]:
    """Lock ``output`` for this job and yield its :class:`OutputClaim`.

    Raises :class:`OutputError` before anything is written when another run holds the output,
    when the output, its temporary or lock name would be one of ``inputs``, when the folder is
    missing or read-only, or when the name is longer than the filesystem allows. On leaving,
    an unpublished temporary file is removed and the lock released (and its file removed).
    """
    path = Path(os.path.abspath(output))
    key = str(path)
    input_paths = [Path(p) for p in inputs]
    with _registry_lock:
        held = _registry.get(key)
        if held is not None and held._owner != threading.get_ident():
            raise OutputError(f"another job in this process is writing {output}", "choose another output path")
        if held is not None:
            held._depth += 1
    if held is not None:
        try:
            _check_not_an_input(held, [*held._inputs, *input_paths], Path(output))
            held._inputs.extend(input_paths)
            yield held
        finally:
            with _registry_lock:
                held._depth -= 1
        return

    claim = _acquire(path, Path(output), input_paths)
    with _registry_lock:
        _registry[key] = claim
    try:
        yield claim
    finally:
        with _registry_lock:
            _registry.pop(key, None)
        claim.discard()
        _release(claim)


def output_error(output: Path, err: OSError) -> OutputError:
    """The one-line error for an ``OSError`` met while writing ``output``."""
    if err.errno in (errno.ENOSPC, errno.EDQUOT):
        return OutputError(
            f"the disk holding {output} is full ({err.strerror})", "free some space or write the output elsewhere"
        )
    if err.errno == errno.ENAMETOOLONG:
        return OutputError(f"the output name {output.name!r} is too long for its filesystem", "choose a shorter name")
    if err.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return OutputError(f"cannot write {output} ({err.strerror})", "choose a folder you can write to")
    return OutputError(f"cannot write {output} ({err.strerror or err})", "check the output folder")


# -- names ----------------------------------------------------------------------------------------
def _name_max(folder: Path) -> int:
    try:
        return os.pathconf(folder, "PC_NAME_MAX")
    except (OSError, ValueError):
        return 255


def _fit(name: str, limit: int) -> str:
    """``name`` cut (on a character boundary) to at most ``limit`` bytes of UTF-8."""
    data = os.fsencode(name)[:limit]
    return data.decode("utf-8", errors="ignore")


def lock_path_for(output: Path) -> Path:
    """``.NAME.EXT.lock`` beside ``output``; shortened with a digest of the name if too long."""
    name = f".{output.name}.lock"
    limit = _name_max(output.parent)
    if len(os.fsencode(name)) <= limit:
        return output.with_name(name)
    tag = hashlib.sha256(os.fsencode(output.name)).hexdigest()[:12]
    return output.with_name(f".{_fit(output.name, limit - 20)}.{tag}.lock")


def _temp_affixes(output: Path) -> tuple[str, str]:
    """mkstemp's prefix and suffix: ``.NAME.`` and ``.partial.EXT``, the name shortened to fit."""
    suffix = f".partial{output.suffix}"
    room = _name_max(output.parent) - len(os.fsencode(suffix)) - 2 - 8  # dots and mkstemp's 8 characters
    return f".{_fit(output.stem, max(room, 1))}.", suffix


# -- locking --------------------------------------------------------------------------------------
def _acquire(path: Path, shown: Path, inputs: list[Path]) -> OutputClaim:
    folder = path.parent
    if not folder.is_dir():
        raise OutputError(f"output folder {folder} does not exist", "create it first")
    if len(os.fsencode(path.name)) > _name_max(folder):
        raise OutputError(
            f"the output name is {len(os.fsencode(path.name))} bytes long; this filesystem allows {_name_max(folder)}",
            "choose a shorter name",
        )
    if path.is_dir():
        raise OutputError(f"output {shown} is a directory", "give a file name such as out.mp4")
    lock = lock_path_for(path)
    probe = OutputClaim(output=path, temp=path, lock_path=lock)
    _check_not_an_input(probe, inputs, shown)
    fd = _lock(lock, shown)
    try:
        prefix, suffix = _temp_affixes(path)
        try:
            temp_fd, temp_name = tempfile.mkstemp(prefix=prefix, suffix=suffix, dir=folder)
        except OSError as err:
            raise output_error(shown, err) from None
        os.close(temp_fd)
        claim = OutputClaim(
            output=path, temp=Path(temp_name), lock_path=lock, _fd=fd, _owner=threading.get_ident(), _inputs=inputs
        )
        try:
            _check_not_an_input(claim, inputs, shown)
        except OutputError:
            claim.discard()
            raise
        return claim
    except BaseException:
        _unlock(lock, fd)
        raise


def _lock(lock: Path, shown: Path) -> int:
    """Open, flock and stamp the lock file; retries when a releasing holder removed it meanwhile."""
    for _ in range(20):
        try:
            fd = os.open(lock, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644)
        except OSError as err:
            if err.errno == errno.ELOOP:
                raise OutputError(f"{lock} is a symbolic link", "remove it; silkpurse keeps its lock there") from None
            raise output_error(shown, err) from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _read_holder(fd)
            os.close(fd)
            raise OutputError(
                f"another silkpurse run is writing {shown}" + (f" (pid {holder})" if holder else ""),
                "wait for it to finish or choose another output path",
            ) from None
        except OSError as err:
            os.close(fd)
            raise output_error(shown, err) from None
        try:
            same = os.fstat(fd).st_ino == os.stat(lock, follow_symlinks=False).st_ino
        except FileNotFoundError:
            same = False
        if not same:  # the previous holder removed the file between our open and flock
            os.close(fd)
            continue
        content = os.pread(fd, 64, 0)
        if content and not content.startswith(_LOCK_TAG.encode()):
            os.close(fd)
            raise OutputError(f"{lock} exists and is not a silkpurse lock file", "move it away; silkpurse locks there")
        try:
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{_LOCK_TAG}{os.getpid()}\n".encode(), 0)
        except OSError as err:
            _unlock(lock, fd)
            raise output_error(shown, err) from None
        return fd
    raise OutputError(f"could not lock {shown}: the lock file keeps changing", "try again")


def _read_holder(fd: int) -> int | None:
    try:
        text = os.pread(fd, 64, 0).decode(errors="replace")
    except OSError:
        return None
    digits = text.removeprefix(_LOCK_TAG).strip()
    return int(digits) if text.startswith(_LOCK_TAG) and digits.isdigit() else None


def _unlock(lock: Path, fd: int) -> None:
    # Remove the file while still holding the lock; a waiter that opened it re-checks the inode.
    with contextlib.suppress(OSError):
        lock.unlink()
    with contextlib.suppress(OSError):
        os.close(fd)


def _release(claim: OutputClaim) -> None:
    if claim._fd >= 0:
        _unlock(claim.lock_path, claim._fd)
        claim._fd = -1


def _check_not_an_input(claim: OutputClaim, inputs: list[Path], shown: Path) -> None:
    for source in inputs:
        for ours, what in (
            (claim.output, "the output"),
            (claim.temp, "its temporary file"),
            (claim.lock_path, "its lock file"),
        ):
            if _same_file(source, ours):
                if what == "the output":
                    raise OutputError(f"the output is the input file ({shown})", "choose another output path")
                raise OutputError(
                    f"the input {source} has the name silkpurse uses for {what} of {shown}",
                    "rename the input or choose another output name",
                )


def _same_file(a: Path, b: Path) -> bool:
    try:
        if os.path.samefile(a, b):
            return True
    except OSError:
        pass
    return Path(os.path.abspath(a)).resolve() == Path(os.path.abspath(b)).resolve()


def _fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def check_output_path(output: Path, source: Path) -> None:
    """Refuse, before any work, an output that is the input or that cannot be written where named."""
    if output.exists() and output.resolve() == source.resolve():
        raise OutputError("the output is the input file", "choose another output path")
    if output.is_dir():
        raise OutputError(f"output {output} is a directory", "give a file name such as out.mp4")
    parent = output.parent if str(output.parent) else Path(".")
    if not parent.is_dir():
        raise OutputError(f"output folder {parent} does not exist", "create it first")
    if not os.access(parent, os.W_OK):
        raise OutputError(f"output folder {parent} is not writable", "choose a folder you can write to")
