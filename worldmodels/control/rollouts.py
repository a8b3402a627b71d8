"""Full-agent rollouts: a lock-step engine per worker, and a pool of workers that survives them.

`RolloutEngine` steps several environments together: each step, one batched encoder call for
every running episode, one batched controller product and one batched numpy LSTM step. V and M
are built once per worker (`RolloutWorker`), never per episode, and the MDN head is not run.

`WorkerPool` spreads jobs over `spawn`ed processes (TensorFlow and `fork` deadlock). A worker
that dies, or takes longer than the timeout over one job, is killed and replaced and its job
given to another, so every job is accounted for.
"""

from __future__ import annotations

import collections
import multiprocessing
import time
import traceback
from dataclasses import dataclass, field
from multiprocessing.connection import wait
from pathlib import Path
from typing import Callable, Hashable, Sequence

import numpy as np

from worldmodels.control.controller import HIDDEN_DIM, controller_actions
from worldmodels.params import EnvParams


@dataclass(frozen=True)
class EpisodeTask:
    """One episode on the track of `seed`, driven by controller `parameters` (867; None for
    the random policies, which need none).

    With a `record_path` the episode is saved there as an episode record of `policy`.
    """

    key: Hashable
    parameters: np.ndarray | None
    seed: int
    record_path: str | None = None
    policy: str = "controller"


@dataclass(frozen=True)
class EpisodeResult:
    key: Hashable
    total_reward: float
    steps: int
    bytes_written: int = 0


@dataclass
class _Episode:
    """A running episode in one slot of the engine."""

    task: EpisodeTask
    observation: np.ndarray
    noise: np.random.Generator
    total_reward: float = 0.0
    steps: int = 0
    record: dict = field(default_factory=lambda: collections.defaultdict(list))


class RolloutEngine:
    """Runs episode tasks on `envs` in lock-step with one agent's V and M.

    The step order is the paper's: observe x_t, z_t = mu + sigma * eps (eps drawn from a
    generator seeded with the episode's seed), a_t = C(z_t, h_t), step the env with a_t, then
    h_{t+1} = LSTM(z_t, a_t, h_t). A finished slot starts the next task at once.
    """

    def __init__(self, agent, envs: Sequence):
        self.agent = agent
        self.envs = list(envs)

    def run(self, tasks: Sequence[EpisodeTask]) -> list[EpisodeResult]:
        from worldmodels.data.tf_records import save_episode

        queue = collections.deque(tasks)
        slots: list[_Episode | None] = [None] * len(self.envs)
        h = np.zeros((len(self.envs), HIDDEN_DIM), np.float32)
        c = np.zeros_like(h)
        results = []

        def start(slot: int) -> None:
            task = queue.popleft()
            observation, _ = self.envs[slot].reset(seed=task.seed)
            slots[slot] = _Episode(task, observation, np.random.default_rng(task.seed))
            h[slot] = 0.0
            c[slot] = 0.0

        for slot in range(len(self.envs)):
            if queue:
                start(slot)
        while any(episode is not None for episode in slots):
            active = [slot for slot, episode in enumerate(slots) if episode is not None]
            episodes = [slots[slot] for slot in active]
            mu, logvar = self.agent.encode(np.stack([e.observation for e in episodes]))
            noise = np.stack([e.noise.standard_normal(mu.shape[1]) for e in episodes])
            z = (mu + np.exp(logvar / 2) * noise).astype(np.float32)
            parameters = np.stack([e.task.parameters for e in episodes])
            actions = controller_actions(parameters, z, h[active])
            for row, (slot, episode) in enumerate(zip(active, episodes)):
                observation, reward, terminated, truncated, _ = self.envs[slot].step(actions[row])
                done = terminated or truncated
                if episode.task.record_path is not None:
                    for key, value in zip(
                        ("observation", "action", "reward", "done"),
                        (episode.observation, actions[row], reward, done),
                    ):
                        episode.record[key].append(value)
                episode.observation = observation
                episode.total_reward += float(reward)
                episode.steps += 1
                if done:
                    written = 0
                    if episode.task.record_path is not None:
                        record = {key: np.stack(values) for key, values in episode.record.items()}
                        record.update(seed=episode.task.seed, policy=episode.task.policy)
                        written = save_episode(episode.task.record_path, record)
                    results.append(
                        EpisodeResult(episode.task.key, episode.total_reward, episode.steps, written)
                    )
                    slots[slot] = None
            h[active], c[active] = self.agent.lstm_step(z, actions, h[active], c[active])
            for slot in active:
                if slots[slot] is None and queue:
                    start(slot)
        return results


@dataclass(frozen=True)
class RolloutConfig:
    """What a rollout worker builds once: its agent and its environments."""

    home: str | None  # None: randomly initialised V and M (the paper's random agent)
    env: EnvParams
    envs_per_worker: int
    model_seed: int = 0


class RolloutWorker:
    """Lives in a worker process: one agent, `envs_per_worker` environments, one TF thread."""

    def __init__(self, config: RolloutConfig):
        import tensorflow as tf

        # One thread each, so N workers on N cores do not oversubscribe them.
        tf.config.threading.set_intra_op_parallelism_threads(1)
        tf.config.threading.set_inter_op_parallelism_threads(1)
        from worldmodels.control.agent import AgentModels
        from worldmodels.data.car_racing import make_env

        home = Path(config.home) if config.home is not None else None
        envs = [make_env(config.env) for _ in range(config.envs_per_worker)]
        self.engine = RolloutEngine(AgentModels(home, config.model_seed), envs)

    def __call__(self, tasks: Sequence[EpisodeTask]) -> list[EpisodeResult]:
        return self.engine.run(tasks)


class WorkerError(RuntimeError):
    """A job failed in a worker, or kept killing or hanging its workers."""


def _serve(make_handler: Callable, connection) -> None:
    """A worker process: build the handler, then run jobs until the pool hangs up."""
    try:
        handler = make_handler()
    except BaseException:
        connection.send(("failed", None, traceback.format_exc()))
        return
    connection.send(("ready", None, None))
    while True:
        try:
            job_index, job = connection.recv()
        except (EOFError, OSError):
            return
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


class WorkerPool:
    """`num_workers` spawned processes, each running `make_handler()` once, then jobs.

    `map(jobs)` returns `handler(job)` for every job, in order. A worker that dies, or takes
    more than `timeout` seconds to start or to finish one job, is killed and replaced, and its
    job runs again elsewhere; a job that does this `max_attempts` times raises WorkerError, as
    does an exception inside a handler (with its traceback). Use as a context manager.
    """

    def __init__(self, make_handler: Callable, num_workers: int, timeout: float = 600.0,
                 max_attempts: int = 3):
        self._context = multiprocessing.get_context("spawn")
        self._make_handler = make_handler
        self.timeout = timeout
        self.max_attempts = max_attempts
        self.workers = [_Worker(self._context, make_handler) for _ in range(num_workers)]
        self.replaced = 0
        self._calls = 0  # tags jobs, so a result of an abandoned earlier map is not taken

    def __enter__(self) -> "WorkerPool":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        for worker in self.workers:
            worker.stop()
        self.workers = []

    def map(self, jobs: Sequence, on_result: Callable[[int, object], None] = lambda i, r: None) -> list:
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
                    raise WorkerError(f"a worker could not start:\n{payload}")
                if status == "ready":
                    worker.ready = True
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
                dead = not worker.process.is_alive()
                late = time.monotonic() - worker.started > self.timeout
                if not dead and not (late and (worker.job is not None or not worker.ready)):
                    continue
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


def run_episode_tasks(
    pool: WorkerPool, tasks: Sequence[EpisodeTask], envs_per_worker: int, description: str
) -> dict[Hashable, EpisodeResult]:
    """Runs `tasks` on the pool in jobs of `envs_per_worker` episodes, with a progress bar."""
    from tqdm import tqdm

    jobs = [tasks[i : i + envs_per_worker] for i in range(0, len(tasks), envs_per_worker)]
    with tqdm(total=len(tasks), desc=description, unit="episode", leave=False) as progress:
        finished = pool.map(jobs, on_result=lambda index, results: progress.update(len(results)))
    return {result.key: result for job in finished for result in job}
