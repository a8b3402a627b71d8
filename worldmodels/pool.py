"""What a pool of workers offers, whichever runs them: this machine's processes
(`worldmodels.workers`) or Ray's actors (`worldmodels.ray_pool`)."""

from __future__ import annotations

from collections.abc import Callable, Sequence


class WorkerError(RuntimeError):
    """A job failed in a worker, or kept killing or hanging its workers."""


class Pool:
    """What both pools offer (`open_pool`): `num_workers`, `map(jobs, on_result)` returning
    `handler(job)` for every job in order, and `close()`; a context manager."""

    num_workers: int

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        raise NotImplementedError

    def map(self, jobs: Sequence, on_result: Callable[[int, object], None]) -> list:
        raise NotImplementedError
