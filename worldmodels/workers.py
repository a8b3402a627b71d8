"""A pool of worker processes that survives its workers.

Each worker builds its handler once (`make_handler()`, e.g. an agent and its environments),
then runs jobs sent to it. Unlike multiprocessing.Pool, a worker that dies or hangs does not
stall the run: it is killed and replaced, and its job runs again on another worker.

Workers are forked from multiprocessing's fork server, a clean process that has only imported
the heavy dependencies (`PRELOADED`) and never runs them: forking a process that has run
TensorFlow can deadlock, forking one that has only imported it does not. The server lives as
long as the command, so every pool after the command's first starts without importing them
again (a pool of 2 rollout workers: 2.7 CPU-seconds instead of 10.7, 1.3 s instead of 4.5;
scripts/benchmark_worker_start.py). At exit the command stops the server and waits for it, so
that the CPU time of the server and of the workers it reaped counts in the command's own
(`time`, `getrusage`); an unwaited server would outlive the command and its time count nowhere.
"""

from __future__ import annotations

import atexit
import collections
import multiprocessing
import multiprocessing.forkserver
import time
import traceback
from collections.abc import Callable, Sequence
from multiprocessing.connection import wait

from worldmodels.pool import Pool, WorkerError

# Third-party modules only (the library does not name the modules of its handlers here); what
# a handler's own module adds is imported by each worker (~0.3 s).
PRELOADED = ("tensorflow", "gymnasium.envs.box2d.car_racing", "ai_edge_litert.interpreter", "numba")


def _stop_fork_server() -> None:
    """Stops this process's fork server, if it started one, and waits for it to end."""
    # A private method (CPython's own tests call it); without it the server is not waited for.
    stop = getattr(multiprocessing.forkserver._forkserver, "_stop", None)
    if stop is not None:
        stop()


def _serve(make_handler: Callable, connection) -> None:
    """A worker process: build the handler, then run jobs until the pool hangs up. It ends
    quietly when the pool hangs up mid-job and on Ctrl-C (which a terminal sends to the whole
    process group): stopping the command, with its one line, is the driver's."""
    try:
        _serve_jobs(make_handler, connection)
    except (KeyboardInterrupt, EOFError, OSError):  # OSError: a broken pipe
        return


def _serve_jobs(make_handler: Callable, connection) -> None:
    try:
        handler = make_handler()
    except KeyboardInterrupt:
        raise
    except BaseException:  # SystemExit too: the driver reports why the worker cannot start
        connection.send(("failed", None, traceback.format_exc()))
        return
    connection.send(("ready", None, None))
    while True:
        job_index, job = connection.recv()
        try:
            connection.send(("done", job_index, handler(job)))
        except Exception:
            connection.send(("error", job_index, traceback.format_exc()))


class _Worker:
    def __init__(self, context, make_handler):
        self.connection, child = context.Pipe()
        self.process = context.Process(target=_serve, args=(make_handler, child), daemon=True)
        self.process.start()
        child.close()
        self.ready = False
        self.job: tuple[int, int] | None = None  # (map call, job index)
        self.started = time.monotonic()

    def stop(self) -> None:
        self.connection.close()
        self.process.join(timeout=5)
        if self.process.is_alive():
            self.process.kill()
            self.process.join()


class WorkerPool(Pool):
    """`num_workers` processes, each running `make_handler()` once, then jobs.

    `map(jobs)` returns `handler(job)` for every job, in order. A worker that dies, or takes
    more than `timeout` seconds over one job, is killed and replaced, and its job runs again
    elsewhere; a job that does this `max_attempts` times raises WorkerError, as does an
    exception inside a handler (with its traceback). A worker that dies before it is ready,
    or is not ready within `startup_timeout` seconds (hung; or a paused run whose clock jumped
    on resuming), is replaced too; `max_attempts` such starts in a row, with no worker ready
    in between, raise. Use as a context manager.
    """

    # Spawned where the platform has no fork server (Windows); scripts/benchmark_worker_start.py
    # measures the two side by side.
    start_method = (
        "forkserver" if "forkserver" in multiprocessing.get_all_start_methods() else "spawn"
    )

    def __init__(
        self,
        make_handler: Callable,
        num_workers: int,
        timeout: float = 600.0,
        max_attempts: int = 3,
        # A start takes seconds of CPU (the agent; the first pool of a command also imports
        # TensorFlow, ~8 s), but far longer at a low priority beside other work: over 5
        # minutes at nice 10 beside a VAE training on 2 cores (with spawned workers, each
        # importing TensorFlow), where a timeout of 300 s replaced worker after worker.
        startup_timeout: float = 1800.0,
    ):
        self._context = multiprocessing.get_context(self.start_method)
        if self.start_method == "forkserver":
            self._context.set_forkserver_preload(list(PRELOADED))  # once it runs: ignored
            atexit.unregister(_stop_fork_server)  # registered once however many pools start
            atexit.register(_stop_fork_server)
        self._make_handler = make_handler
        self.timeout = timeout
        self.startup_timeout = startup_timeout
        self.max_attempts = max_attempts
        self.num_workers = num_workers
        self.workers = [_Worker(self._context, make_handler) for _ in range(num_workers)]
        self.replaced = 0
        self._failed_starts = 0  # workers replaced in a row before they were ready
        self._calls = 0  # tags jobs, so a result of an abandoned earlier map is not taken

    def close(self) -> None:
        for worker in self.workers:
            worker.stop()
        self.workers = []

    def map(
        self, jobs: Sequence, on_result: Callable[[int, object], None] = lambda i, r: None
    ) -> list:
        self._calls += 1
        results: list = [None] * len(jobs)
        pending = collections.deque(range(len(jobs)))
        attempts = collections.Counter()
        remaining = len(jobs)
        while remaining:
            for worker in self.workers:
                if worker.ready and worker.job is None and pending:
                    worker.job = (self._calls, pending.popleft())
                    worker.started = time.monotonic()
                    worker.connection.send((worker.job, jobs[worker.job[1]]))
            for connection in wait([w.connection for w in self.workers], timeout=0.5):
                worker = next(w for w in self.workers if w.connection is connection)
                try:
                    status, tag, payload = connection.recv()
                except (EOFError, OSError):
                    continue  # it died; found below
                if status == "failed":
                    raise could_not_start(payload)
                if status == "ready":
                    worker.ready = True
                    self._failed_starts = 0
                    worker.started = time.monotonic()
                    continue
                worker.job = None
                if tag[0] != self._calls:
                    continue  # a job of an earlier map that raised
                if status == "error":
                    raise WorkerError(f"a job failed in a worker:\n{payload}")
                if results[tag[1]] is None:
                    results[tag[1]] = payload
                    remaining -= 1
                    on_result(tag[1], payload)
            for index, worker in enumerate(self.workers):
                waited = time.monotonic() - worker.started
                dead = not worker.process.is_alive()
                late = worker.job is not None and waited > self.timeout
                failed_start = not worker.ready and (dead or waited > self.startup_timeout)
                if not dead and not late and not failed_start:
                    continue
                if failed_start:
                    if dead:
                        raise_why_it_could_not_start(worker)
                    self._failed_starts += 1
                    if self._failed_starts >= self.max_attempts:
                        last = (
                            "died" if dead else f"was not ready within {self.startup_timeout:.0f} s"
                        )
                        raise WorkerError(
                            f"{self._failed_starts} workers in a row failed to start (the "
                            f"last {last}); giving up"
                        )
                lost, worker.job = worker.job, None
                worker.process.kill()
                worker.stop()
                self.workers[index] = _Worker(self._context, self._make_handler)
                self.replaced += 1
                if lost is not None and lost[0] == self._calls:
                    attempts[lost[1]] += 1
                    if attempts[lost[1]] >= self.max_attempts:
                        raise WorkerError(
                            f"job {lost[1]} {'killed' if dead else 'hung'} its worker "
                            f"{attempts[lost[1]]} times; giving up"
                        )
                    pending.appendleft(lost[1])
        return results


def could_not_start(traceback_text: str) -> WorkerError:
    """The error of a worker whose handler could not be built, with its traceback."""
    return WorkerError(f"a worker could not start:\n{traceback_text}")


def raise_why_it_could_not_start(worker: _Worker) -> None:
    """Raises the error a dead worker sent before it ended, if it could not build its handler
    (the pool may see it dead before it reads its last message)."""
    try:
        while worker.connection.poll():
            status, _, payload = worker.connection.recv()
            if status == "failed":
                raise could_not_start(payload)
    except (EOFError, OSError):  # nothing more: it died without a word
        pass


BACKENDS = ("local", "ray")


def open_pool(
    backend: str,
    make_handler: Callable,
    num_workers: int,
    timeout: float,
    ray_address: str | None = None,
) -> Pool:
    """The pool of a command's `--backend`: `WorkerPool` ("local": processes on this machine)
    or `worldmodels.ray_pool.RayPool` ("ray": actors on the Ray instance at `ray_address`).
    Both are `Pool`s."""
    if backend == "ray":
        from worldmodels.ray_pool import RayPool

        return RayPool(make_handler, num_workers, timeout, address=ray_address)
    if backend != "local":
        raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
    return WorkerPool(make_handler, num_workers, timeout)
