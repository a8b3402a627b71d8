"""Workers as Ray actors: `--backend ray`, the cluster twin of `worldmodels.workers.WorkerPool`.

Each worker is an actor with one CPU that builds its handler once (`make_handler`, shipped
through the object store, so nodes need no shared filesystem) and runs one job at a time. The
driver hands out jobs and gathers results; faults are Ray's to mend:
- an actor that dies (or its node) is restarted by Ray (`max_restarts=-1`) and the job it was
  running is retried on it (`max_task_retries`);
- a job that runs past `timeout` gets its actor killed (`ray.kill(..., no_restart=False)`),
  which Ray restarts and retries the job on, as above.
A job that takes its actor down `max_attempts` times, an exception in a handler and a handler
that cannot be built raise `WorkerError`, as with the local pool.
"""

from __future__ import annotations

import collections
import time
from collections.abc import Callable, Sequence

from worldmodels.pool import Pool, WorkerError

INSTALL_HINT = 'Ray is not installed: pip install -e ".[ray]" (or pip install "ray[default]")'


class _HandlerActor:
    """One worker: builds its handler once, then runs the jobs the driver sends."""

    def __init__(self, make_handler: Callable):
        self.handler = make_handler()

    def run(self, job):
        return self.handler(job)


def import_ray():
    try:
        import ray
    except ImportError:
        raise WorkerError(INSTALL_HINT) from None
    return ray


class RayPool(Pool):
    """`num_workers` actors on the Ray instance at `address` ("auto", "host:port"; None starts
    a local instance with `num_workers` CPUs); `map` as `WorkerPool.map`. A context manager:
    leaving it kills the actors, and shuts down the Ray instance it started."""

    def __init__(
        self,
        make_handler: Callable,
        num_workers: int,
        timeout: float = 600.0,
        max_attempts: int = 3,
        address: str | None = None,
    ):
        ray = self._ray = import_ray()
        self.timeout = timeout
        self.num_workers = num_workers
        self._started_ray = not ray.is_initialized()
        if self._started_ray:
            if address is None:
                ray.init(num_cpus=num_workers)
            else:
                try:
                    ray.init(address=address)
                except ConnectionError as error:
                    raise WorkerError(
                        f"--ray-address {address}: no Ray cluster to join ({error}); start one "
                        "with `ray start --head`, or leave --ray-address unset for a local one"
                    ) from None
        actor_class = ray.remote(_HandlerActor).options(
            num_cpus=1, max_restarts=-1, max_task_retries=max_attempts - 1
        )
        # One copy per node, however many actors; held for the pool's life, as a restarted
        # actor builds its handler from it again.
        self._make_handler = ray.put(make_handler)
        self.actors = [actor_class.remote(self._make_handler) for _ in range(num_workers)]
        self.replaced = 0  # actors killed for running past the timeout

    def close(self) -> None:
        for actor in self.actors:
            self._ray.kill(actor)
        self.actors = []
        if self._started_ray:
            self._ray.shutdown()

    def map(
        self, jobs: Sequence, on_result: Callable[[int, object], None] = lambda i, r: None
    ) -> list:
        ray = self._ray
        results: list = [None] * len(jobs)
        pending = collections.deque(range(len(jobs)))
        idle = collections.deque(range(len(self.actors)))
        running = {}  # reference of a job's result -> (actor, job index, when it was (re)started)
        try:
            while pending or running:
                while idle and pending:
                    actor, job = idle.popleft(), pending.popleft()
                    reference = self.actors[actor].run.remote(jobs[job])
                    running[reference] = (actor, job, time.monotonic())
                ready, _ = ray.wait(list(running), num_returns=1, timeout=0.5)
                for reference in ready:
                    actor, job, _ = running.pop(reference)
                    idle.append(actor)
                    try:
                        results[job] = ray.get(reference)
                    except ray.exceptions.RayActorError as error:
                        if error.actor_init_failed:
                            raise WorkerError(f"a worker could not start:\n{error}") from None
                        raise WorkerError(
                            f"job {job} killed or hung its worker too many times; giving up:\n"
                            f"{error}"
                        ) from None
                    except ray.exceptions.RayTaskError as error:
                        raise WorkerError(f"a job failed in a worker:\n{error}") from None
                    on_result(job, results[job])
                now = time.monotonic()
                for reference, (actor, job, started) in list(running.items()):
                    if now - started > self.timeout:
                        self._ray.kill(self.actors[actor], no_restart=False)
                        self.replaced += 1
                        running[reference] = (actor, job, now)
        finally:
            for reference in running:  # jobs of a map that raised: not left to run on
                ray.cancel(reference)
        return results
