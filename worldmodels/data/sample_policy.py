"""Stage 1: sample CarRacing episodes with a random policy into the experiments home.

    python -m worldmodels.data.sample_policy --policy random --episodes 100 --num-process 2

Writes `<home>/<policy>-rollouts/episode-NNNNNN.tfrecord`, one file per episode index in
[--start-episode, --episodes). Episode i always gets the same env seed (derived from --seed and
i), so rerunning a command skips the episodes already written and samples only the rest.
"""

from __future__ import annotations

import json
import multiprocessing
from typing import Iterator

import numpy as np
from tqdm import tqdm

from worldmodels.cli import make_parser, non_negative_int, positive_int
from worldmodels.data.car_racing import make_env
from worldmodels.data.tf_records import episode_filename, save_episode
from worldmodels.files import atomic_write_text
from worldmodels.params import EnvParams, SamplingParams, resolve_home, rollouts_directory
from worldmodels.seeds import derive_seed

POLICIES = ("random", "brownian")


def episode_seed(base_seed: int, index: int) -> int:
    """The env seed of episode `index`: depends on nothing but (base_seed, index)."""
    return derive_seed(base_seed, index)


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


_worker_env = None


def _start_worker(env_params: EnvParams) -> None:
    # One environment per worker process, reset with a new seed for every episode.
    global _worker_env
    _worker_env = make_env(env_params)


def _sample_episode(task: tuple) -> tuple[int, int]:
    """Samples and saves one episode; returns (frames, bytes written)."""
    path, policy, seed, brownian_dt = task
    if policy == "random":
        actions = white_noise_actions(_worker_env.action_space, seed)
    else:
        actions = brownian_actions(_worker_env.action_space, seed, brownian_dt)
    episode = run_episode(_worker_env, actions, seed)
    episode["policy"] = policy
    return len(episode["action"]), save_episode(path, episode)


def parse_args(argv: list[str] | None = None):
    env, sampling = EnvParams(), SamplingParams()
    parser = make_parser(__doc__.split("\n\n")[0])
    parser.add_argument(
        "--policy", choices=POLICIES, default="random",
        help="random: uniform white noise each step; brownian: a random walk in action space",
    )
    parser.add_argument(
        "--episodes", type=positive_int, default=sampling.episodes,
        help="sample episode indices [start-episode, episodes)",
    )
    parser.add_argument(
        "--episode-length", "--episode_length", type=positive_int, default=env.episode_length,
        help="steps before an episode is truncated",
    )
    parser.add_argument(
        "--env", choices=("fast", "stock"), default=env.env,
        help="fast: FastCarRacing (identical observations, ~3x faster); stock: CarRacing-v3",
    )
    parser.add_argument(
        "--num-process", "--num_process", type=positive_int,
        default=multiprocessing.cpu_count(), help="worker processes, one environment each",
    )
    parser.add_argument(
        "--start-episode", "--start_episode", type=non_negative_int, default=0,
        help="first episode index; episodes already written are skipped either way",
    )
    parser.add_argument(
        "--seed", type=non_negative_int, default=sampling.seed,
        help="base seed; episode i's env seed is derived from (seed, i)",
    )
    parser.add_argument(
        "--brownian-dt", type=float, default=sampling.brownian_dt,
        help="time step of the brownian policy's random walk",
    )
    args = parser.parse_args(argv)
    if args.start_episode >= args.episodes:
        parser.error(
            f"--start-episode {args.start_episode} must be below --episodes {args.episodes}"
        )
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    env_params = EnvParams(env=args.env, episode_length=args.episode_length)
    directory = rollouts_directory(resolve_home(args.home), args.policy)
    directory.mkdir(parents=True, exist_ok=True)

    tasks = []
    for index in range(args.start_episode, args.episodes):
        path = directory / episode_filename(index)
        if not path.exists():
            tasks.append((path, args.policy, episode_seed(args.seed, index), args.brownian_dt))
    skipped = args.episodes - args.start_episode - len(tasks)
    atomic_write_text(
        directory / "sample_policy-config.json",
        json.dumps({"command": vars(args), "env": env_params.__dict__}, indent=2, default=str),
    )

    frames = written_bytes = 0
    if tasks:
        # spawn, not fork: TensorFlow's threads deadlock in forked children.
        context = multiprocessing.get_context("spawn")
        workers = min(args.num_process, len(tasks))
        with context.Pool(workers, _start_worker, (env_params,)) as pool:
            results = pool.imap_unordered(_sample_episode, tasks)
            for episode_frames, episode_bytes in tqdm(results, total=len(tasks), unit="episode"):
                frames += episode_frames
                written_bytes += episode_bytes

    per_frame = f"{written_bytes / frames:.0f} bytes/frame" if frames else "no new frames"
    print(
        f"wrote {len(tasks)} {args.policy} episodes ({frames} frames, {per_frame}) to "
        f"{directory}; skipped {skipped} already complete"
    )


if __name__ == "__main__":
    main()
