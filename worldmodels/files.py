"""Atomic file writes (a reader sees a file complete or not at all) and directories one
process writes at a time."""

from __future__ import annotations

import contextlib
import fcntl
import os
import sys
from collections.abc import Iterator
from pathlib import Path


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yields a hidden temporary path next to `path` for the caller to write.

    When the block exits normally the temporary file is flushed to disk and renamed to `path`
    (an atomic replace on POSIX). When it raises, or the process dies, `path` is untouched;
    a killed process can leave only the hidden `.<name>.<pid>.tmp` file, which readers ignore.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        yield temporary
        with open(temporary, "rb") as written:
            os.fsync(written.fileno())
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """Writes `text` to `path` atomically."""
    with atomic_path(path) as temporary:
        temporary.write_text(text)


@contextlib.contextmanager
def exclusive_use(directory: str | os.PathLike, what: str) -> Iterator[None]:
    """Within it, this process is the only one writing `what` in `directory`: a second process
    asking for the same exits with a message naming the first's pid and command, instead of
    the two interleaving their checkpoints and records. The lock is the kernel's (flock on
    `<directory>/.lock`), so a killed process leaves nothing to clean up; the worker processes
    it starts (forked from a server that never opened the lock) do not hold it."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    with open(directory / ".lock", "a+") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            lock.seek(0)
            holder = lock.read().strip() or "another process"
            sys.exit(
                f"error: {holder} is writing {what} in {directory}; wait for it to end (or stop "
                "it), then rerun this command to go on from where it stands"
            )
        lock.truncate(0)
        lock.write(f"pid {os.getpid()} ({' '.join(sys.argv)})\n")
        lock.flush()
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
