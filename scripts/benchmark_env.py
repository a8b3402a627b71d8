"""Steps per second of stock CarRacing-v3, FastCarRacing as it was at a reference revision,
FastCarRacing now, and EnvPool's CarRacing-v3 when installed, side by side in one run.

    python scripts/benchmark_env.py --episodes 3 --steps 500

Every environment replays the same actions on the same tracks, one environment after the
other within each episode so that all see the same machine load; only `step` is timed (not
`reset`). Two kinds of driving: steering swept left and right at steady gas, as a driving
agent steers, and the shipped agent's own actions on its track
(tests/data/agent_actions.npy). EnvPool (`pip install envpool`, never a dependency) draws
other tracks with other pixels: it is an anchor for speed only. A second pass splits
today's FastCarRacing's step into its parts.
"""

import argparse
import subprocess
import time
import types
from collections import defaultdict
from pathlib import Path

import numpy as np
import pygame
from gymnasium.envs.box2d.car_racing import CarRacing

import worldmodels.data.car_racing as car_racing
from worldmodels.data.policies import sweeping_steering

ROOT = Path(__file__).resolve().parents[1]
AGENT_ACTIONS = ROOT / "tests" / "data" / "agent_actions.npy"
# FastCarRacing before issue #31's work (the flip, the compiled polygons, the bands).
REFERENCE_REVISION = "c6bade0"


def reference_env(revision: str):
    """FastCarRacing as `worldmodels/data/car_racing.py` was at the git `revision`."""
    source = subprocess.run(
        ["git", "show", f"{revision}:worldmodels/data/car_racing.py"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    module = types.ModuleType(f"car_racing_at_{revision}")
    exec(compile(source, f"{revision}:worldmodels/data/car_racing.py", "exec"), module.__dict__)
    return module.FastCarRacing()


class EnvPoolCarRacing:
    """EnvPool's CarRacing-v3 (one env) behind reset(seed) and step(action)."""

    def __init__(self):
        import envpool

        self.env = envpool.make_gymnasium("CarRacing-v3", num_envs=1)

    def reset(self, seed):
        return self.env.reset()

    def step(self, action):
        observation, reward, terminated, truncated, info = self.env.step(action[None])
        return observation[0], reward[0], terminated[0], truncated[0], info


def timed_steps(env, seed: int, actions: np.ndarray) -> tuple[int, float]:
    """(steps taken, seconds spent in step) for one episode of `actions` from `seed`."""
    env.reset(seed=seed)
    seconds = 0.0
    for steps, action in enumerate(actions, start=1):  # noqa: B007 (the count is returned)
        start = time.perf_counter()
        _, _, terminated, truncated, _ = env.step(action)
        seconds += time.perf_counter() - start
        if terminated or truncated:
            break
    return steps, seconds


def compare(envs: dict, seeds: list[int], episodes_actions: list[np.ndarray]) -> dict:
    """Milliseconds per step of each env over the same episodes."""
    steps, seconds = dict.fromkeys(envs, 0), dict.fromkeys(envs, 0.0)
    for seed, actions in zip(seeds, episodes_actions):
        for name, env in envs.items():
            episode_steps, episode_seconds = timed_steps(env, seed, actions)
            steps[name] += episode_steps
            seconds[name] += episode_seconds
    return {name: seconds[name] / steps[name] * 1e3 for name in envs}


def cost_split(seeds, episodes_actions) -> dict[str, float]:
    """Milliseconds per step of today's FastCarRacing spent in each part of its step."""
    env = car_racing.FastCarRacing()
    totals = defaultdict(float)

    def timing(name, function):
        def timed(*args, **kwargs):
            start = time.perf_counter()
            result = function(*args, **kwargs)
            totals[name] += time.perf_counter() - start
            return result

        return timed

    patched = [
        (car_racing, "draw_scene", "road (compiled polygons)"),
        (pygame.transform, "smoothscale", "scaling to 96x96 (smoothscale)"),
        (pygame.transform, "flip", "flipping 96-wide bands"),
        (env, "_render_stats", "indicator bar and score"),
        (env.world, "Step", "physics"),
    ]
    originals = [(owner, name, getattr(owner, name)) for owner, name, _ in patched]
    for owner, name, part in patched:
        setattr(owner, name, timing(part, getattr(owner, name)))
    steps = 0
    try:
        for seed, actions in zip(seeds, episodes_actions):
            env.reset(seed=seed)
            env.car.step = timing("physics", env.car.step)  # reset builds a new car
            env.car.draw = timing("car", env.car.draw)
            for action in actions:
                start = time.perf_counter()
                _, _, terminated, truncated, _ = env.step(action)
                totals["step"] += time.perf_counter() - start
                steps += 1
                if terminated or truncated:
                    break
    finally:
        for owner, name, original in originals:
            setattr(owner, name, original)
    split = {part: seconds for part, seconds in totals.items() if part != "step"}
    split["rest of step"] = totals["step"] - sum(split.values())
    return {part: seconds / steps * 1e3 for part, seconds in split.items()}


def main():
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter
    )
    parser.add_argument("--episodes", type=int, default=3, help="episodes per kind of driving")
    parser.add_argument("--steps", type=int, default=500, help="steps per episode at most")
    parser.add_argument("--seed", type=int, default=0, help="first track seed")
    parser.add_argument(
        "--reference",
        default=REFERENCE_REVISION,
        help="git revision of the FastCarRacing to compare with; 'none' to skip",
    )
    args = parser.parse_args()

    envs = {"stock CarRacing-v3": CarRacing()}
    if args.reference != "none":
        envs[f"FastCarRacing at {args.reference}"] = reference_env(args.reference)
    envs["FastCarRacing"] = car_racing.FastCarRacing()
    try:
        envs["EnvPool CarRacing-v3 (other pixels)"] = EnvPoolCarRacing()
    except ImportError:
        print("(envpool is not installed: no EnvPool row)")

    seeds = [args.seed + episode for episode in range(args.episodes)]
    agent = np.load(AGENT_ACTIONS)[: args.steps]
    drivings = {
        "steering swept at steady gas": [sweeping_steering(args.steps) for _ in seeds],
        "the shipped agent's actions": [agent for _ in seeds],
    }
    for driving, episodes_actions in drivings.items():
        milliseconds = compare(envs, seeds, episodes_actions)
        print(f"{driving} ({len(seeds)} tracks, up to {args.steps} steps each):")
        stock = milliseconds["stock CarRacing-v3"]
        for name, ms in milliseconds.items():
            print(
                f"  {name:>38}: {1e3 / ms:7.1f} steps/s  {ms:.3f} ms/step  {stock / ms:5.2f}x stock"
            )
        if args.reference != "none":
            speedup = (
                milliseconds[f"FastCarRacing at {args.reference}"] / milliseconds["FastCarRacing"]
            )
            print(f"  {'FastCarRacing now vs ' + args.reference:>38}: {speedup:.2f}x")
    print("FastCarRacing's step, steering swept at steady gas:")
    for part, ms in cost_split(seeds, drivings["steering swept at steady gas"]).items():
        print(f"  {part:>38}: {ms:.3f} ms")


if __name__ == "__main__":
    main()
