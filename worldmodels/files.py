"""Atomic file writes: a reader sees a file complete or not at all."""

from __future__ import annotations

import contextlib
import os
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
