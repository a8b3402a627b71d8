"""How much of the track each stage-1 policy's episodes reach, measured side by side in one run.

    python scripts/measure_policy_coverage.py --episodes 12 --episode-length 1000

Samples the same episode indices (so the same tracks) with every random policy through the
real stage-1 command, `worldmodels.data.sample_policy`, into a temporary home, then replays
each stored episode (its seed and stored actions) in CarRacing and measures, per episode:
the share of track tiles visited, the distance the car travelled, the episode's length, and
the car's mean speed. Prints mean ± std over episodes for each policy, as a Markdown table.
"""

import argparse
import tempfile
from pathlib import Path

import numpy as np
from gymnasium.envs.box2d.car_racing import FPS

from worldmodels import layout
from worldmodels.data.car_racing import FastCarRacing
from worldmodels.data.sample_policy import main as sample_policy
from worldmodels.data.tf_records import list_episodes, load_episode

POLICIES = ("random", "brownian", "agent-random")


def replay(seed: int, actions: np.ndarray) -> dict[str, float]:
    """Coverage of one stored episode, replayed from its seed with its stored actions."""
    env = FastCarRacing()
    env.reset(seed=seed)
    position = np.array(env.car.hull.position)
    distance = speed = 0.0
    for action in actions:
        env.step(action)
        new_position = np.array(env.car.hull.position)
        distance += float(np.linalg.norm(new_position - position))
        speed += float(np.linalg.norm(env.car.hull.linearVelocity))
        position = new_position
    coverage = {
        "tiles visited (%)": 100.0 * env.tile_visited_count / len(env.track),
        "distance (track widths)": distance / (2 * 40 / 6),  # TRACK_WIDTH of CarRacing
        "length (steps)": float(len(actions)),
        "mean speed (track widths/s)": speed / len(actions) / (2 * 40 / 6),
    }
    env.close()
    return coverage


def main():
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter
    )
    parser.add_argument("--episodes", type=int, default=12, help="episodes per policy")
    parser.add_argument("--episode-length", type=int, default=1000, help="steps per episode")
    parser.add_argument("--num-process", type=int, default=2, help="sampling processes")
    parser.add_argument("--policies", nargs="+", default=list(POLICIES), choices=POLICIES)
    args = parser.parse_args()

    rows = {}
    with tempfile.TemporaryDirectory() as home:
        for policy in args.policies:
            sample_policy(
                [
                    "--home", home,
                    "--policy", policy,
                    "--episodes", str(args.episodes),
                    "--episode-length", str(args.episode_length),
                    "--num-process", str(args.num_process),
                ]
            )  # fmt: skip
            episodes = [load_episode(p) for p in list_episodes(layout.rollouts(Path(home), policy))]
            measured = [replay(e["seed"], e["action"]) for e in episodes]
            rows[policy] = {
                name: (np.mean([m[name] for m in measured]), np.std([m[name] for m in measured]))
                for name in measured[0]
            }
    columns = list(next(iter(rows.values())))
    print(
        f"\n{args.episodes} episodes of at most {args.episode_length} steps per policy, "
        f"same tracks for every policy ({FPS} steps/s of simulated time); mean ± std:\n"
    )
    print("| policy | " + " | ".join(columns) + " |")
    print("|---|" + "---|" * len(columns))
    for policy, values in rows.items():
        cells = [f"{mean:.1f} ± {std:.1f}" for mean, std in values.values()]
        print(f"| `{policy}` | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
