"""Stage 1's sampling: CarRacing episodes of a policy, written one record per episode.

Episode i always gets the same env seed (derived from the base seed and i), so a rerun skips
the episodes already written and samples only the rest (`worldmodels.data.sample_policy`, its
command).
"""

from __future__ import annotations

import dataclasses
import json
import shutil
import sys
from collections.abc import Sequence
from functools import partial
from pathlib import Path

import numpy as np

from worldmodels import layout
from worldmodels.control.controller import PARAMETER_COUNT
from worldmodels.control.generations import controller_spec, load_agent_controller
from worldmodels.control.rollouts import (
    EpisodeResult,
    EpisodeTask,
    RolloutEngine,
    RolloutWorker,
    episode_jobs,
    rollout_config,
    use_one_thread,
)
from worldmodels.data.car_racing import make_env
from worldmodels.data.policies import (
    brownian_actions,
    episode_seed,
    run_episode,
    white_noise_actions,
)
from worldmodels.data.tf_records import (
    EPISODE,
    CorruptEpisodeError,
    encode_record,
    episode_filename,
    list_episodes,
    load_episode,
    load_first_episode,
    write_record_file,
)
from worldmodels.files import atomic_write_text
from worldmodels.params import EnvParams, SamplingParams
from worldmodels.progress import progress
from worldmodels.records import command_record
from worldmodels.seeds import SEED_SCHEME, Stream, derive_seed
from worldmodels.workers import WorkerError, open_pool
from worldmodels.world_model import WorldModel, write_world_model_weights

# The official random agent's weights are Cauchy x s with s ~ U(0, RANDOM_AGENT_MAX_SCALE).
RANDOM_AGENT_MAX_SCALE = 0.01


class RandomPolicySampler:
    """A worker's handler for the random policies: one environment, reset for every episode."""

    def __init__(self, env_params: EnvParams, brownian_dt: float):
        self.env = make_env(env_params)
        self.brownian_dt = brownian_dt

    def __call__(self, tasks: Sequence[EpisodeTask]) -> list[EpisodeResult]:
        results = []
        for task in tasks:
            if task.policy == "random":
                actions = white_noise_actions(self.env.action_space, task.seed)
            else:
                actions = brownian_actions(self.env.action_space, task.seed, self.brownian_dt)
            episode = run_episode(self.env, actions, task.seed)
            episode["policy"] = task.policy
            results.append(
                EpisodeResult(
                    task.key,
                    float(episode["reward"].sum()),
                    len(episode["action"]),
                    encode_record(episode, EPISODE),
                )
            )
        return results


class RandomWorldModel(WorldModel):
    """V and M of the random agent, with its encoder's outputs kept finite.

    With Cauchy weights the random encoder's log-variance often exceeds what exp can take in
    float32 (for about half the draws of s), and z = mu + exp(logvar / 2) * eps becomes
    infinite, then NaN in the LSTM and the actions: the official code would step the car with
    NaN actions. Clipping mu and logvar keeps such draws what they were meant to be, a
    controller saturated at its extremes.
    """

    LIMIT = 1e3  # |mu| <= LIMIT, logvar <= 2 ln(LIMIT): |z| stays near LIMIT * (1 + |eps|)

    def encode(self, frames: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        mu, logvar = super().encode(frames)
        limit = self.LIMIT
        return np.clip(mu, -limit, limit), np.clip(logvar, -2 * np.log(limit), 2 * np.log(limit))


class RandomAgentSampler:
    """agent-random's worker handler: the official code's random agent, in which the
    controller, V and M are all redrawn for every episode, each weight ~ Cauchy x s with one
    s ~ U(0, 0.01) per episode. Episode i's draws come from its own seed (Stream.RANDOM_AGENT),
    so they do not depend on which worker runs it."""

    def __init__(self, env_params: EnvParams, base_seed: int):
        use_one_thread()
        self.agent = RandomWorldModel(None)
        self.engine = RolloutEngine(self.agent, [make_env(env_params)])
        self.base_seed = base_seed

    def __call__(self, tasks: Sequence[EpisodeTask]) -> list[EpisodeResult]:
        results = []
        for task in tasks:
            draws = np.random.default_rng(
                derive_seed(self.base_seed, Stream.RANDOM_AGENT, task.key)
            )
            scale = draws.uniform(0.0, RANDOM_AGENT_MAX_SCALE)
            controller = scale * draws.standard_cauchy(PARAMETER_COUNT)
            self.agent.randomize(draws, scale)
            results += self.engine.run([dataclasses.replace(task, parameters=controller)])
        return results


def require_matching_episodes(directory: Path, policy: str) -> None:
    """Exits when `directory` holds episodes that new ones must not join: of another policy,
    or of seeds derived another way (new episodes' tracks would not follow from their indices
    the same way)."""
    try:
        first = load_first_episode(list_episodes(directory), on_corrupt="skip")
    except FileNotFoundError:
        return  # nothing readable to mix with
    if first["policy"] != policy:
        sys.exit(
            f"error: {directory} holds episodes of policy {first['policy']}, not {policy}; "
            "name another dataset with --dataset"
        )
    if first["seed_scheme"] != SEED_SCHEME:
        sys.exit(
            f"error: {directory} holds episodes of seed scheme {first['seed_scheme']}, and this "
            f"version derives seeds with scheme {SEED_SCHEME}; sample into another --home, or "
            "move the old episodes aside"
        )


def episode_handler(
    policy: str,
    home: Path,
    models: Path,
    env_params: EnvParams,
    *,
    seed: int,
    brownian_dt: float,
    envs_per_worker: int,
    latent: str | None,
    backend: str,
):
    """A picklable factory of the workers that sample `policy`'s episodes; the controller's
    (of `home`) drive with the V and M of `models` and read z by `latent`, as they were trained
    to (both unused by the other policies)."""
    if policy == "controller":
        spec = controller_spec(home)
        config = rollout_config(models, env_params, envs_per_worker, spec, latent, backend)
        return partial(RolloutWorker, config)
    if policy == "agent-random":
        return partial(RandomAgentSampler, env_params, seed)
    return partial(RandomPolicySampler, env_params, brownian_dt)


def keep_world_model(home: Path, destination: Path) -> None:
    """Writes the weights of the home's latest V and M (with their run.json) into
    `destination`, which then reads as a home; atomic: the folder is whole or absent."""
    staging = destination.with_name(f".{destination.name}-partial")
    staging.parent.mkdir(parents=True, exist_ok=True)
    shutil.rmtree(staging, ignore_errors=True)
    world_model = WorldModel(home, with_memory=controller_spec(home).uses_memory)
    write_world_model_weights(home, world_model, staging)
    staging.rename(destination)


def intact_episode(path: Path) -> bool:
    """Whether `path` holds a whole episode; a damaged one (its writer was atomic, so damaged
    since, on disk or by hand) is reported and sampled again. Reads the file whole: about a
    second per 100 episodes of 1000 steps, paid only on a rerun."""
    if not path.exists():
        return False
    try:
        load_episode(path)
    except CorruptEpisodeError as error:
        print(
            f"warning: {path} is damaged ({type(error).__name__}); sampling it again",
            file=sys.stderr,
        )
        return False
    return True


def perturbed(controller, noise: float, seed: int, index: int):
    """The parameters episode `index` drives with: `controller` plus Gaussian noise of sd `noise`
    drawn from the episode's own stream (`controller` itself when noise is 0, or when there
    is none: a random policy)."""
    if controller is None or noise == 0:
        return controller
    draw = np.random.default_rng(derive_seed(seed, Stream.CONTROLLER_NOISE, index))
    return (controller + noise * draw.standard_normal(controller.shape)).astype(controller.dtype)


def sample_episodes(
    home: Path,
    policy: str,
    dataset: str,
    episodes: int,
    env_params: EnvParams,
    *,
    start_episode: int = 0,
    seed: int = 0,
    generation: str = "best",
    parameter_noise: float = 0.0,
    brownian_dt: float = SamplingParams.brownian_dt,
    num_process: int = 1,
    envs_per_worker: int = 16,
    worker_timeout: float = 600.0,
    backend: str = "local",
    ray_address: str | None = None,
) -> str:
    """Samples the episodes of indices [`start_episode`, `episodes`) of `policy` missing from
    (or damaged in) `<home>/<dataset>-rollouts/`, with `num_process` workers on `backend`;
    "controller" drives the home's `generation` (N, max or best), each episode with its own
    Gaussian perturbation of sd `parameter_noise` on the controller's parameters. The call is
    recorded in the dataset's sampling config as its command's flags. Returns the summary line;
    exits with a message naming what does not fit."""
    directory = layout.rollouts(home, dataset)

    require_matching_episodes(directory, policy)
    missing = [
        index
        for index in range(start_episode, episodes)
        if not intact_episode(directory / episode_filename(index))
    ]

    # A finished run reruns as a no-op even once its controller no longer matches the home's
    # retrained V and M (iteration two), so the controller is loaded only when work is left.
    controller = latent = None
    config_path = layout.sampling_config(home, dataset)
    # The generation --generation named when the episodes were sampled: "best" means another one
    # once training goes on, so the config keeps the number (a rerun that samples nothing keeps
    # the one recorded).
    sampled_generation = (
        json.loads(config_path.read_text()).get("sampled_generation")
        if config_path.exists()
        else None
    )
    # The controller drives with the V and M it was trained on: the home's, kept beside its
    # episodes when it first samples, so that they can be sampled again once the home's V and
    # M were retrained on them (a later iteration resumed from a snapshot on another machine).
    models = layout.sampling_world_model(home, dataset)
    if policy == "controller" and missing:
        first_sampling = not models.exists()
        sampled_generation, controller, latent = load_agent_controller(
            home, generation, models=home if first_sampling else models
        )
        if first_sampling:
            keep_world_model(home, models)

    tasks = [
        EpisodeTask(
            index,
            perturbed(controller, parameter_noise, seed, index),
            episode_seed(seed, index),
            keep_record=True,
            policy=policy,
        )
        for index in missing
    ]
    skipped = episodes - start_episode - len(tasks)
    directory.mkdir(parents=True, exist_ok=True)
    command = command_record(
        home,
        env_params,
        policy=policy,
        dataset=dataset,
        generation=generation,
        parameter_noise=parameter_noise,
        episodes=episodes,
        seed=seed,
        brownian_dt=brownian_dt,
        start_episode=start_episode,
        num_process=num_process,
        envs_per_worker=envs_per_worker,
        worker_timeout=worker_timeout,
        backend=backend,
        ray_address=ray_address,
    )
    config = {"command": command, "env": env_params.__dict__, "seed_scheme": SEED_SCHEME}
    if sampled_generation is not None:
        config["sampled_generation"] = sampled_generation
    atomic_write_text(config_path, json.dumps(config, indent=2, default=str))

    frames = written_bytes = 0

    def write_records(job_index: int, results: list[EpisodeResult]) -> None:
        """Writes each finished episode as it arrives, so an interrupted run keeps them."""
        nonlocal frames, written_bytes
        for result in results:
            path = directory / episode_filename(result.key)
            written_bytes += write_record_file(path, result.record)
            frames += result.steps
        bar.update(len(results))

    if tasks:
        make_handler = episode_handler(
            policy,
            home,
            models,
            env_params,
            seed=seed,
            brownian_dt=brownian_dt,
            envs_per_worker=envs_per_worker,
            latent=latent,
            backend=backend,
        )
        # Only the trained agent steps several environments in lock-step; the other policies
        # run one episode at a time (agent-random's V and M change with every episode).
        per_job = envs_per_worker if policy == "controller" else 1
        jobs = episode_jobs(tasks, per_job, num_process)
        bar = progress(total=len(tasks), unit="episode")
        try:
            with open_pool(
                backend,
                make_handler,
                min(num_process, len(jobs)),
                worker_timeout,
                ray_address,
            ) as pool:
                pool.map(jobs, on_result=write_records)
        except WorkerError as error:
            sys.exit(f"error: {error}")
        finally:
            bar.close()

    per_frame = f"{written_bytes / frames:.0f} bytes/frame" if frames else "no new frames"
    return (
        f"wrote {len(tasks)} {policy} episodes ({frames} frames, {per_frame}) to "
        f"{directory}; skipped {skipped} already complete"
    )
