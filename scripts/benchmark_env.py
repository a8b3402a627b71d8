"""Steps per second of stock CarRacing-v3 and FastCarRacing, side by side in one run.

    python scripts/benchmark_env.py --episodes 3 --steps 500

Both environments replay the same random actions on the same tracks, alternating episode by
episode so that both see the same machine load; only `step` is timed (not `reset`). Then a
second pass over the fast environment splits its step into physics, drawing and scaling.
"""

import argparse
import time
from collections import defaultdict

import numpy as np
from gymnasium.envs.box2d.car_racing import CarRacing

from worldmodels.data.car_racing import FastCarRacing


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


def cost_split(seeds, episodes_actions) -> dict[str, float]:
    """Milliseconds per step of the fast env spent in physics, drawing and scaling."""
    env = FastCarRacing()
    totals = defaultdict(float)

    def timing(name, function):
        def timed(*args, **kwargs):
            start = time.perf_counter()
            result = function(*args, **kwargs)
            totals[name] += time.perf_counter() - start
            return result

        return timed

    env.world.Step = timing("physics", env.world.Step)
    env._render = timing("render", env._render)
    env._create_image_array = timing("scaling", env._create_image_array)
    steps = 0
    for seed, actions in zip(seeds, episodes_actions):
        env.reset(seed=seed)
        env.car.step = timing("physics", env.car.step)  # reset builds a new car
        for action in actions:
            start = time.perf_counter()
            _, _, terminated, truncated, _ = env.step(action)
            totals["step"] += time.perf_counter() - start
            steps += 1
            if terminated or truncated:
                break
    split = {
        "physics": totals["physics"],
        "drawing": totals["render"] - totals["scaling"],
        "scaling (1000x800 -> 96x96)": totals["scaling"],
    }
    split["rest of step"] = totals["step"] - sum(split.values())
    return {name: seconds / steps * 1e3 for name, seconds in split.items()}


def main():
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter
    )
    parser.add_argument("--episodes", type=int, default=3, help="episodes per environment")
    parser.add_argument("--steps", type=int, default=500, help="steps per episode at most")
    parser.add_argument("--seed", type=int, default=0, help="first track seed")
    args = parser.parse_args()

    rng = np.random.default_rng(args.seed)
    low, high = np.array([-1, 0, 0], np.float32), np.array([1, 1, 1], np.float32)
    seeds = [args.seed + episode for episode in range(args.episodes)]
    episodes_actions = [rng.uniform(low, high, (args.steps, 3)).astype(np.float32) for _ in seeds]

    envs = {"stock CarRacing-v3": CarRacing(), "FastCarRacing": FastCarRacing()}
    steps = dict.fromkeys(envs, 0)
    seconds = dict.fromkeys(envs, 0.0)
    for seed, actions in zip(seeds, episodes_actions):
        for name, env in envs.items():
            episode_steps, episode_seconds = timed_steps(env, seed, actions)
            steps[name] += episode_steps
            seconds[name] += episode_seconds
    rates = {name: steps[name] / seconds[name] for name in envs}
    for name, rate in rates.items():
        print(f"{name:>20}: {rate:7.1f} steps/s ({1e3 / rate:.2f} ms/step, {steps[name]} steps)")
    print(f"{'speed-up':>20}: {rates['FastCarRacing'] / rates['stock CarRacing-v3']:.2f}x")
    print("FastCarRacing cost per step:")
    for part, milliseconds in cost_split(seeds, episodes_actions).items():
        print(f"  {part:>28}: {milliseconds:.3f} ms")


if __name__ == "__main__":
    main()
