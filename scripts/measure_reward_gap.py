"""Where an agent's points go: its test episodes replayed, the gap to 1000 split into tiles
missed and steps spent, where on the track the missed tiles are, and the laps that crossed
the start line with tiles missing.

    python scripts/measure_reward_gap.py --home /tmp/agent --generation best --episodes 100

CarRacing pays 1000/N per track tile first visited and -0.1 per step, so an episode's
shortfall from 1000 is 1000 * missed / N + 0.1 * steps (+100 for leaving the playfield). In
gymnasium 1.4.0 the lap-completion check never fires (Gymnasium issue #1269): an episode ends
early only once every tile is visited, so a lap that misses one tile drives on to the step
limit. Replays the tracks `evaluate` runs (the same seeds; the rewards are checked against its
report when there is one) on FastCarRacing, whose steps equal stock CarRacing-v3's.
"""

import argparse
import json
import math

import gymnasium
import numpy as np

from worldmodels import layout
from worldmodels.control.generations import controller_spec, load_agent_controller
from worldmodels.control.rollouts import EpisodeTask, RolloutEngine, episode_jobs, use_one_thread
from worldmodels.data.car_racing import make_env
from worldmodels.params import EnvParams
from worldmodels.progress import progress
from worldmodels.seeds import Stream, derive_seed
from worldmodels.world_model import WorldModel

# A tile is in a corner when the track's heading turns by more than this per tile, a third
# of the most CarRacing's generator turns (TRACK_TURN_RATE = 0.31 rad).
CORNER_TURN = 0.1


def tile_turns(track) -> np.ndarray:
    """|heading change| per tile (radians), centred: half the turn from the tile before to the
    tile after."""
    headings = np.array([beta for _, beta, _, _ in track])
    change = np.roll(headings, -1) - np.roll(headings, 1)
    change = (change + math.pi) % (2 * math.pi) - math.pi
    return np.abs(change) / 2


class TileTracker(gymnasium.Wrapper):
    """Records, for each episode it runs (by track seed, into `episodes`), the tiles never
    visited, the track's turn per tile, and the step at which the car first came back to the
    start line after going round most of the track (None if it never did)."""

    def __init__(self, env, episodes: dict):
        super().__init__(env)
        self.episodes = episodes

    def reset(self, *, seed=None, options=None):
        result = self.env.reset(seed=seed, options=options)
        self.seed, self.steps, self.farthest, self.back_at_start = seed, 0, 0, None
        return result

    def step(self, action):
        result = self.env.step(action)
        car_racing, self.steps = self.env.unwrapped, self.steps + 1
        tiles = len(car_racing.track)
        under = {tile.idx for wheel in car_racing.car.wheels for tile in wheel.tiles}
        if under:
            self.farthest = max(self.farthest, max(under))
            if self.back_at_start is None and self.farthest > tiles * 3 // 4 and min(under) < 3:
                missing = tiles - car_racing.tile_visited_count
                self.back_at_start = {"step": self.steps, "missing": missing}
        if result[2] or result[3]:  # terminated or truncated
            missed = [i for i, tile in enumerate(car_racing.road) if not tile.road_visited]
            turns = tile_turns(car_racing.track)
            self.episodes[self.seed] = {
                "tiles": tiles,
                "missed": missed,
                "corner_tiles": int((turns > CORNER_TURN).sum()),
                "missed_in_corners": int((turns[missed] > CORNER_TURN).sum()) if missed else 0,
                "back_at_start": self.back_at_start,
            }
        return result


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter
    )
    parser.add_argument("--home", help="the experiments home of the agent")
    parser.add_argument("--generation", default="best")
    parser.add_argument("--episodes", type=int, default=100)
    parser.add_argument("--seed", type=int, default=0, help="evaluate's --seed: 0, the test tracks")
    parser.add_argument("--episode-length", type=int, default=1000)
    parser.add_argument("--out", help="JSON of every episode (default: beside the evaluation)")
    parser.add_argument("--envs-per-worker", type=int, default=16, help="as evaluate's")
    parser.add_argument("--num-process", type=int, default=2, help="evaluate's, for its jobs")
    args = parser.parse_args()
    home = layout.resolve_home(args.home)
    use_one_thread()  # as a rollout worker, before TensorFlow's first operation
    generation, controller, latent = load_agent_controller(home, args.generation)
    # Evaluate's engine, in evaluate's jobs (16 environments stepped together, as on its
    # 2 workers), so that every episode is evaluate's own, step for step.
    agent = WorldModel(home, with_memory=controller_spec(home).uses_memory)
    tracked = {}
    envs = [
        TileTracker(make_env(EnvParams(env="fast", episode_length=args.episode_length)), tracked)
        for _ in range(args.envs_per_worker)
    ]
    engine = RolloutEngine(agent, envs, latent)
    seeds = [derive_seed(args.seed, Stream.EVALUATION_TRACKS, j) for j in range(args.episodes)]
    tasks = [EpisodeTask(j, controller, seed) for j, seed in enumerate(seeds)]
    results = {}
    for job in progress(episode_jobs(tasks, args.envs_per_worker, args.num_process), desc="jobs"):
        results.update({result.key: result for result in engine.run(job)})
    episodes = [
        {"seed": seed, "reward": results[j].total_reward, "steps": results[j].steps,
         **tracked[seed]}
        for j, seed in enumerate(seeds)
    ]  # fmt: skip

    report = layout.evaluation_file(home, generation, seed=args.seed)
    if report.exists():
        recorded = json.loads(report.read_text())["rewards"][: args.episodes]
        replayed = [episode["reward"] for episode in episodes]
        assert np.allclose(recorded, replayed, atol=1e-3), "the replay is not evaluate's episodes"
        print(f"rewards equal {report.name}'s, episode by episode")

    rewards = np.array([e["reward"] for e in episodes])
    steps = np.array([e["steps"] for e in episodes])
    missed_points = np.array([1000 * len(e["missed"]) / e["tiles"] for e in episodes])
    complete = [e for e in episodes if not e["missed"]]
    back_missing = [e for e in episodes if e["back_at_start"] and e["back_at_start"]["missing"]]
    missed_tiles = sum(len(e["missed"]) for e in episodes)
    in_corners = sum(e["missed_in_corners"] for e in episodes)
    corner_share = sum(e["corner_tiles"] for e in episodes) / sum(e["tiles"] for e in episodes)
    lines = [
        f"generation {generation}, {len(episodes)} episodes (evaluate --seed {args.seed}): "
        f"{rewards.mean():.1f} ± {rewards.std():.1f}",
        f"gap to 1000: {1000 - rewards.mean():.1f} = steps {0.1 * steps.mean():.1f} "
        f"+ missed tiles {missed_points.mean():.1f} "
        f"+ other {1000 - rewards.mean() - 0.1 * steps.mean() - missed_points.mean():.1f}",
        f"every tile visited: {len(complete)} episodes"
        + (
            f", {np.mean([e['reward'] for e in complete]):.1f} at "
            f"{np.mean([e['steps'] for e in complete]):.0f} steps"
            if complete
            else ""
        ),
        f"tiles missed: {len(episodes) - len(complete)} episodes, median "
        f"{np.median([len(e['missed']) for e in episodes if e['missed']] or [0]):.0f} tiles; "
        f"{len(back_missing)} came back to the start line with tiles missing (median step "
        f"{np.median([e['back_at_start']['step'] for e in back_missing] or [0]):.0f}) and drove on",
        f"missed tiles in corners (turn > {CORNER_TURN} rad/tile): "
        f"{in_corners / max(missed_tiles, 1):.0%} of {missed_tiles}; corners are "
        f"{corner_share:.0%} of the tracks",
        f"with no tile missed at the same steps: {(rewards + missed_points).mean():.1f}",
    ]
    print("\n".join(lines))
    out = args.out or report.with_name(f"{report.stem}-gap.json")
    with open(out, "w") as file:
        json.dump({"summary": lines, "episodes": episodes}, file, indent=1)
    print(f"every episode in {out}")


if __name__ == "__main__":
    main()
