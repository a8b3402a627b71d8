"""Stage 1: sample CarRacing episodes into the experiments home.

    python -m worldmodels.data.sample_policy --policy random --episodes 100 --num-process 2
    python -m worldmodels.data.sample_policy --policy controller --generation best --episodes 5000
    python -m worldmodels.data.sample_policy --policy controller --dataset controller-3 --seed 2

Writes `<home>/<policy>-rollouts/episode-NNNNNN.tfrecord` (`<home>/<dataset>-rollouts/` with
--dataset), one file per episode index in [--start-episode, --episodes). Episode i always gets
the same env seed (derived from --seed and i), so rerunning a command skips the episodes
already written and samples only the rest.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from collections.abc import Iterator, Sequence
from functools import partial
from pathlib import Path

import numpy as np
from tqdm import tqdm

from worldmodels import layout
from worldmodels.cli import (
    add_rollout_arguments,
    dataset_name,
    make_parser,
    non_negative_int,
    positive_int,
)
from worldmodels.control.controller import PARAMETER_COUNT
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
from worldmodels.seeds import SEED_SCHEME, Stream, derive_seed
from worldmodels.workers import WorkerError, open_pool
from worldmodels.world_model import WorldModel

POLICIES = ("random", "brownian", "agent-random", "controller")
# The official random agent's weights are Cauchy x s with s ~ U(0, RANDOM_AGENT_MAX_SCALE).
RANDOM_AGENT_MAX_SCALE = 0.01


def episode_seed(base_seed: int, index: int) -> int:
    """The env seed of episode `index`: depends on nothing but (base_seed, index)."""
    return derive_seed(base_seed, Stream.EPISODE_TRACKS, index)


def white_noise_actions(action_space, seed: int) -> Iterator[np.ndarray]:
    """Independent uniform actions: `action_space.sample()` every step (the write-up's policy)."""
    action_space.seed(seed)
    while True:
        yield action_space.sample()


def brownian_actions(action_space, seed: int, dt: float) -> Iterator[np.ndarray]:
    """a_{t+1} = clip(a_t + sqrt(dt) * N(0, 1)) from a uniform a_0: smooth steering and gas."""
    action_space.seed(seed)
    noise = np.random.default_rng(seed)
    action = action_space.sample()
    while True:
        yield action
        step = np.sqrt(dt) * noise.standard_normal(action.shape)
        action = np.clip(action + step, action_space.low, action_space.high).astype(np.float32)


def run_episode(env, actions: Iterator[np.ndarray], seed: int) -> dict:
    """Steps `env` from `reset(seed=seed)` until it terminates or is truncated.

    Stores (o_t, a_t, r_t, done_t) with o_t the observation a_t was chosen on; the observation
    after the last step is not stored. Actions are float32 as stored, so replays are exact.
    """
    observation, _ = env.reset(seed=seed)
    steps = {"observation": [], "action": [], "reward": [], "done": []}
    done = False
    while not done:
        action = np.asarray(next(actions), dtype=np.float32)
        next_observation, reward, terminated, truncated, _ = env.step(action)
        done = terminated or truncated
        for key, value in zip(steps, (observation, action, reward, done)):
            steps[key].append(value)
        observation = next_observation
    episode = {key: np.stack(values) for key, values in steps.items()}
    episode["seed"] = seed
    return episode


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


def parse_args(argv: list[str] | None = None):
    sampling = SamplingParams()
    parser = make_parser(__doc__.split("\n\n")[0])
    parser.add_argument(
        "--policy",
        choices=POLICIES,
        default="random",
        help="random: uniform white noise each step; brownian: a random walk in action space; "
        "agent-random: the paper's random agent, a random controller on random V and M, "
        "all three redrawn every episode; "
        "controller: the trained agent of the home (see --generation)",
    )
    parser.add_argument(
        "--dataset",
        type=dataset_name,
        help="write <home>/<dataset>-rollouts, or <home>/<policy>-rollouts when unset; name a "
        "later iteration's episodes, e.g. controller-3 beside iteration two's controller",
    )
    parser.add_argument(
        "--generation",
        default="best",
        help="with --policy controller: N, max (the latest) or best (the best evaluated mean)",
    )
    parser.add_argument(
        "--episodes",
        type=positive_int,
        default=sampling.episodes,
        help="sample episode indices [start-episode, episodes)",
    )
    parser.add_argument(
        "--start-episode",
        "--start_episode",
        type=non_negative_int,
        default=0,
        help="first episode index; episodes already written are skipped either way",
    )
    parser.add_argument(
        "--seed",
        type=non_negative_int,
        default=sampling.seed,
        help="base seed; episode i's env seed is derived from (seed, i)",
    )
    parser.add_argument(
        "--brownian-dt",
        type=float,
        default=sampling.brownian_dt,
        help="time step of the brownian policy's random walk",
    )
    add_rollout_arguments(parser)
    args = parser.parse_args(argv)
    args.dataset = args.dataset or args.policy
    if args.start_episode >= args.episodes:
        parser.error(
            f"--start-episode {args.start_episode} must be below --episodes {args.episodes}"
        )
    return args


def episode_handler(
    args: argparse.Namespace, home: Path, env_params: EnvParams, latent: str | None
):
    """A picklable factory of the workers that sample `args.policy`'s episodes; the
    controller's read z by `latent`, as it was trained to (None for the other policies)."""
    if args.policy == "controller":
        from worldmodels.control.generations import controller_spec

        spec = controller_spec(home)
        config = rollout_config(args, home, args.envs_per_worker, spec, latent=latent)
        return partial(RolloutWorker, config)
    if args.policy == "agent-random":
        return partial(RandomAgentSampler, env_params, args.seed)
    return partial(RandomPolicySampler, env_params, args.brownian_dt)


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


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    home = layout.resolve_home(args.home)
    env_params = EnvParams(env=args.env, episode_length=args.episode_length)
    directory = layout.rollouts(home, args.dataset)

    require_matching_episodes(directory, args.policy)
    missing = [
        index
        for index in range(args.start_episode, args.episodes)
        if not intact_episode(directory / episode_filename(index))
    ]

    # A finished run reruns as a no-op even once its controller no longer matches the home's
    # retrained V and M (iteration two), so the controller is loaded only when work is left.
    controller = latent = None
    config_path = layout.sampling_config(home, args.dataset)
    # The generation --generation named when the episodes were sampled: "best" means another one
    # once training goes on, so the config keeps the number (a rerun that samples nothing keeps
    # the one recorded).
    sampled_generation = (
        json.loads(config_path.read_text()).get("sampled_generation")
        if config_path.exists()
        else None
    )
    if args.policy == "controller" and missing:
        from worldmodels.control.generations import load_agent_controller

        sampled_generation, controller, latent = load_agent_controller(home, args.generation)

    tasks = [
        EpisodeTask(
            index, controller, episode_seed(args.seed, index), keep_record=True, policy=args.policy
        )
        for index in missing
    ]
    skipped = args.episodes - args.start_episode - len(tasks)
    directory.mkdir(parents=True, exist_ok=True)
    config = {"command": vars(args), "env": env_params.__dict__, "seed_scheme": SEED_SCHEME}
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
        progress.update(len(results))

    if tasks:
        make_handler = episode_handler(args, home, env_params, latent)
        # Only the trained agent steps several environments in lock-step; the other policies
        # run one episode at a time (agent-random's V and M change with every episode).
        per_job = args.envs_per_worker if args.policy == "controller" else 1
        jobs = episode_jobs(tasks, per_job, args.num_process)
        progress = tqdm(total=len(tasks), unit="episode")
        try:
            with open_pool(
                args.backend,
                make_handler,
                min(args.num_process, len(jobs)),
                args.timeout,
                args.ray_address,
            ) as pool:
                pool.map(jobs, on_result=write_records)
        except WorkerError as error:
            sys.exit(f"error: {error}")
        finally:
            progress.close()

    per_frame = f"{written_bytes / frames:.0f} bytes/frame" if frames else "no new frames"
    print(
        f"wrote {len(tasks)} {args.policy} episodes ({frames} frames, {per_frame}) to "
        f"{directory}; skipped {skipped} already complete"
    )


if __name__ == "__main__":
    main()
