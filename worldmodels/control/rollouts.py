"""Full-agent rollouts: a lock-step engine per worker, and a pool of workers that survives them.

`RolloutEngine` steps several environments together: each step, one batched encoder call for
every running episode, one batched controller product and one batched numpy memory step. V and M
are built once per worker (`RolloutWorker`), never per episode, and the MDN head is not run.

`run_episode_tasks` spreads episodes over a pool of such workers (`worldmodels.workers.open_pool`:
processes on this machine, or Ray actors).
"""

from __future__ import annotations

import collections
import math
import tempfile
import time
from collections.abc import Hashable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import tensorflow as tf
from threadpoolctl import threadpool_limits

from worldmodels.control.controller import ACTION_DIM, ControllerSpec, controller_actions
from worldmodels.data.car_racing import make_env
from worldmodels.data.tf_records import EPISODE, encode_record
from worldmodels.params import LATENT_READINGS, EnvParams
from worldmodels.progress import progress
from worldmodels.seeds import latent_noise
from worldmodels.world_model import WorldModel, pack_world_model, unpack_world_model


@dataclass(frozen=True)
class EpisodeTask:
    """One episode on the track of `seed`, driven by controller `parameters` (867 for the
    paper's; None for the random policies, which need none).

    With `keep_record` the result carries the episode as a record of `policy` (the bytes of its
    file, for the driver to write: workers never write into the home). With `stall_steps` > 0
    the episode ends once it has gained no new track tile (no positive reward) for that many
    steps, and its total counts STALLED_STEP_REWARD for every step left to the episode
    length: what a car that stays stalled collects (training only; evaluations never stop).
    """

    key: Hashable
    parameters: np.ndarray | None
    seed: int
    keep_record: bool = False
    policy: str = "controller"
    stall_steps: int = 0


STALLED_STEP_REWARD = -0.1  # CarRacing's reward for a step that reaches no new tile


@dataclass(frozen=True)
class EpisodeResult:
    key: Hashable
    total_reward: float
    steps: int  # steps run (fewer than counted in total_reward when it stalled)
    record: bytes | None = None  # `encode_record` of the episode, with EpisodeTask.keep_record
    stalled: bool = False  # ended by EpisodeTask.stall_steps
    lap_finished: bool = False  # CarRacing ended it because the car completed the lap
    # CPU seconds of the worker process that ran it, its job's shared evenly among the job's
    # episodes (they step together); 0.0 where not measured (episodes run in the caller).
    cpu_seconds: float = 0.0


@dataclass
class _Episode:
    """A running episode in one slot of the engine."""

    task: EpisodeTask
    observation: np.ndarray
    noise: np.random.Generator
    total_reward: float = 0.0
    steps: int = 0
    steps_without_new_tile: int = 0
    record: dict = field(default_factory=lambda: collections.defaultdict(list))


class RolloutEngine:
    """Runs episode tasks on `envs` in lock-step with one agent's V and M (a `WorldModel`),
    its controllers giving `actions` outputs (`ControllerSpec.actions`).

    The step order is the paper's: observe x_t, z_t = mu + sigma * eps (eps from the episode's
    `latent_noise` stream; a hard one-hot sample with a discrete VAE), a_t = C(z_t, h_t), step
    the env with a_t, then h_{t+1} = LSTM(z_t, a_t, h_t); with the attentive memory, C reads
    h_t and its attention context, and a V-only controller reads z_t alone. A finished slot
    starts the next task at once. With `latent` "mode" z_t is q(z|x)'s most likely value
    instead of a draw (see `LATENT_READINGS`): what a controller trained that way reads.
    """

    def __init__(
        self, world_model, envs: Sequence, latent: str = "sample", actions: int = ACTION_DIM
    ):
        if latent not in LATENT_READINGS:
            raise ValueError(f"latent must be one of {LATENT_READINGS}, not {latent!r}")
        self.world_model = world_model
        self.envs = list(envs)
        self.latent = latent
        self.actions = actions

    def run(self, tasks: Sequence[EpisodeTask]) -> list[EpisodeResult]:
        queue = collections.deque(tasks)
        slots: list[_Episode | None] = [None] * len(self.envs)
        state = self.world_model.initial_state(len(self.envs))
        results = []

        def start(slot: int) -> None:
            task = queue.popleft()
            observation, _ = self.envs[slot].reset(seed=task.seed)
            slots[slot] = _Episode(task, observation, latent_noise(task.seed))
            for array in state.values():
                array[slot] = 0

        for slot in range(len(self.envs)):
            if queue:
                start(slot)
        while any(episode is not None for episode in slots):
            active = [slot for slot, episode in enumerate(slots) if episode is not None]
            episodes = [slots[slot] for slot in active]
            frames = np.stack([e.observation for e in episodes])
            z = self.world_model.codes(frames, [e.noise for e in episodes], self.latent)
            parameters = np.stack([e.task.parameters for e in episodes])
            actions = controller_actions(parameters, z, state["features"][active], self.actions)
            for row, (slot, episode) in enumerate(zip(active, episodes)):
                observation, reward, terminated, truncated, info = self.envs[slot].step(
                    actions[row]
                )
                done = terminated or truncated
                if episode.task.keep_record:
                    for key, value in zip(
                        ("observation", "action", "reward", "done"),
                        (episode.observation, actions[row], reward, done),
                    ):
                        episode.record[key].append(value)
                episode.observation = observation
                episode.total_reward += float(reward)
                episode.steps += 1
                episode.steps_without_new_tile, stalls = count_stall(
                    episode.steps_without_new_tile, reward, episode.task.stall_steps
                )
                stalled = bool(stalls) and not done
                if stalled:
                    left = self.envs[slot].spec.max_episode_steps - episode.steps
                    episode.total_reward += STALLED_STEP_REWARD * left
                    done = True
                if done:
                    encoded = None
                    if episode.task.keep_record:
                        record = {key: np.stack(values) for key, values in episode.record.items()}
                        record.update(seed=episode.task.seed, policy=episode.task.policy)
                        encoded = encode_record(record, EPISODE)
                    results.append(
                        EpisodeResult(
                            episode.task.key,
                            episode.total_reward,
                            episode.steps,
                            encoded,
                            stalled,
                            lap_finished=info.get("lap_finished", False),
                        )
                    )
                    slots[slot] = None
            stepped = self.world_model.memory_step(
                z, actions, {k: v[active] for k, v in state.items()}
            )
            for name, array in stepped.items():
                state[name][active] = array
            for slot in active:
                if slots[slot] is None and queue:
                    start(slot)
        return results


def count_stall(steps_without_new_tile, reward, stall_steps):
    """The rule of `EpisodeTask.stall_steps` after a step that earned `reward`, for one episode
    (numbers) or many (arrays): (steps without a new tile now, whether the episode stalls)."""
    steps_without_new_tile = (steps_without_new_tile + 1) * (reward <= 0)
    return steps_without_new_tile, (stall_steps > 0) & (steps_without_new_tile >= stall_steps)


@dataclass(frozen=True)
class RolloutConfig:
    """What a rollout worker builds once: its agent and its environments."""

    home: str | None  # None: randomly initialised V and M (the paper's random agent)
    env: EnvParams
    envs_per_worker: int
    model_seed: int = 0
    controller: ControllerSpec = ControllerSpec()
    # V and M of `home` as `pretrained.pack_world_model` packs them, for workers on machines
    # that cannot read the home (Ray's nodes); None: workers read the home.
    world_model: bytes | None = None
    latent: str = "sample"  # one of LATENT_READINGS


def rollout_config(
    home: Path,
    env: EnvParams,
    envs_per_worker: int,
    controller: ControllerSpec,
    latent: str = "sample",
    backend: str = "local",
) -> RolloutConfig:
    """What each rollout worker of a command builds: on the "ray" `backend` V and M travel
    inside it (its nodes need not read the home)."""
    world_model = None
    if backend == "ray":
        world_model = pack_world_model(home, controller.uses_memory)
    return RolloutConfig(
        str(home),
        env,
        envs_per_worker,
        controller=controller,
        world_model=world_model,
        latent=latent,
    )


def use_one_thread() -> None:
    """Limits TensorFlow and numpy's BLAS to one thread in this process, so that N rollout
    processes on N cores do not oversubscribe them.

    Must run before the process's first TensorFlow operation. Without the BLAS limit, the LSTM
    step's small matrix products wake one OpenBLAS thread per core, and those threads
    busy-wait between steps: a worker then burns about two cores for the work of one
    (measured by `scripts/benchmark_rollouts.py`).
    """
    tf.config.threading.set_intra_op_parallelism_threads(1)
    tf.config.threading.set_inter_op_parallelism_threads(1)
    threadpool_limits(limits=1, user_api="blas")


class RolloutWorker:
    """Lives in a worker process: one agent, `envs_per_worker` environments, one thread."""

    def __init__(self, config: RolloutConfig):
        use_one_thread()
        home = Path(config.home) if config.home is not None else None
        if config.world_model is not None:
            self._home_copy = tempfile.TemporaryDirectory(prefix="worldmodels-home-")
            home = Path(self._home_copy.name)
            unpack_world_model(config.world_model, home)
        envs = [make_env(config.env) for _ in range(config.envs_per_worker)]
        world_model = WorldModel(home, config.model_seed, with_memory=config.controller.uses_memory)
        self.engine = RolloutEngine(world_model, envs, config.latent, config.controller.actions)

    def __call__(self, tasks: Sequence[EpisodeTask]) -> list[EpisodeResult]:
        started = time.process_time()
        results = self.engine.run(tasks)
        share = (time.process_time() - started) / max(len(results), 1)
        return [replace(result, cpu_seconds=share) for result in results]


def episode_jobs(tasks: Sequence, envs_per_worker: int, num_workers: int) -> list[Sequence]:
    """`tasks` in jobs of at most `envs_per_worker` episodes, smaller when there are too few
    to give each of `num_workers` workers one (16 evaluation episodes on 64 workers run as 16
    jobs of one, not one job of 16)."""
    per_job = max(1, min(envs_per_worker, math.ceil(len(tasks) / num_workers)))
    return [tasks[i : i + per_job] for i in range(0, len(tasks), per_job)]


def run_episode_tasks(
    pool, tasks: Sequence[EpisodeTask], envs_per_worker: int, description: str
) -> dict[Hashable, EpisodeResult]:
    """Runs `tasks` on the pool (`worldmodels.workers.open_pool`; see `episode_jobs`), with a
    progress bar."""
    jobs = episode_jobs(tasks, envs_per_worker, pool.num_workers)
    with progress(total=len(tasks), desc=description, unit="episode", leave=False) as bar:
        finished = pool.map(jobs, on_result=lambda index, results: bar.update(len(results)))
    return {result.key: result for job in finished for result in job}
