"""Evaluate a trained agent the paper's way: mean ± std of total reward over 100 random tracks.

    python -m worldmodels.control.evaluate --generation best --episodes 100

Uses the VAE and MDN-RNN of the experiments home and a controller from
`control/generations/`. Writes `control/evaluations/generation_N-<candidate>.json`, or
`...-seedS.json` for `--seed S` other than 0 (every episode's reward, track seed, steps and
whether the car finished its lap: a lap finished at step T scores 1000 - 0.1 T, so a score of
900 or more needs one) and a histogram PNG next to it. The controller reads z as it was
trained to (`train_controller --latent`); `--latent` reading it the other way, a diagnostic,
names the report `...-zmode...` or `...-zsample...`.
"""

from __future__ import annotations

import json
import sys
from functools import partial
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from worldmodels import layout
from worldmodels.cli import add_rollout_arguments, make_parser, non_negative_int, positive_int
from worldmodels.control.generations import controller_spec, load_agent_controller
from worldmodels.control.rollouts import (
    EpisodeTask,
    RolloutWorker,
    rollout_config,
    run_episode_tasks,
)
from worldmodels.files import atomic_path, atomic_write_text
from worldmodels.params import LATENT_READINGS, EnvParams
from worldmodels.seeds import SEED_SCHEME, Stream, derive_seed
from worldmodels.workers import WorkerError, open_pool

SOLVED = 900  # CarRacing's bar: a mean of 900 over 100 episodes


def parse_args(argv: list[str] | None = None):
    parser = make_parser(__doc__.split("\n\n")[0])
    parser.add_argument(
        "--generation", default="best", help="N, max (the latest) or best (the best evaluated mean)"
    )
    parser.add_argument(
        "--candidate",
        choices=("mean", "best"),
        default="mean",
        help="the generation's distribution mean, or its fittest candidate",
    )
    parser.add_argument(
        "--episodes",
        type=positive_int,
        default=100,
        help="episodes, each on a new random track (the paper: 100)",
    )
    parser.add_argument(
        "--seed",
        type=non_negative_int,
        default=0,
        help="seeds the tracks: 0 the paper's evaluation (the shipped card's), another seed "
        "other unseen tracks, e.g. to choose a generation on before evaluating it on seed 0's",
    )
    parser.add_argument(
        "--latent",
        choices=LATENT_READINGS,
        help="the z the controller reads each step, instead of the way it was trained to "
        "(default): sample, a draw from q(z|x); mode, its most likely value (mu). A "
        "diagnostic of how much a controller relies on the draw's noise (report named "
        "...-zmode... or ...-zsample...)",
    )
    add_rollout_arguments(parser)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    home = layout.resolve_home(args.home)
    generation, controller, trained_latent = load_agent_controller(
        home, args.generation, args.candidate
    )
    latent = args.latent or trained_latent

    config = rollout_config(
        home,
        EnvParams(env=args.env, episode_length=args.episode_length),
        args.envs_per_worker,
        controller_spec(home),
        latent,
        args.backend,
    )
    seeds = [derive_seed(args.seed, Stream.EVALUATION_TRACKS, j) for j in range(args.episodes)]
    tasks = [EpisodeTask(j, controller, seed) for j, seed in enumerate(seeds)]
    try:
        with open_pool(
            args.backend,
            partial(RolloutWorker, config),
            min(args.num_process, len(tasks)),
            args.timeout,
            args.ray_address,
        ) as pool:
            results = run_episode_tasks(pool, tasks, args.envs_per_worker, "evaluating")
    except WorkerError as error:
        sys.exit(f"error: {error}")
    episodes = [results[j] for j in range(args.episodes)]
    rewards = np.array([episode.total_reward for episode in episodes])
    laps = sum(episode.lap_finished for episode in episodes)

    record = {
        "generation": generation,
        "candidate": args.candidate,
        "mean": float(rewards.mean()),
        "std": float(rewards.std()),
        "rewards": rewards.tolist(),
        "steps": [episode.steps for episode in episodes],
        "lap_finished": [episode.lap_finished for episode in episodes],
        "seed": args.seed,
        "track_seeds": seeds,
        "env": args.env,
        "seed_scheme": SEED_SCHEME,
        "episode_length": args.episode_length,
        "latent": latent,
        "trained_latent": trained_latent,
    }
    overridden = None if latent == trained_latent else latent
    report = layout.evaluation_file(home, generation, args.candidate, args.seed, latent=overridden)
    report.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(report, json.dumps(record, indent=2))
    title = f"generation {generation} ({agent_name(record)})"
    save_histogram(report.with_suffix(".png"), rewards, title)
    comparisons = same_track_comparisons(record, report)
    if comparisons:
        print(f"on the same tracks, this minus {', '.join(comparisons)} (± standard error)")
    print(
        f"generation {generation} ({agent_name(record)}): "
        f"{rewards.mean():.1f} ± {rewards.std():.1f} "
        f"over {args.episodes} episodes, {laps} finished their lap within {args.episode_length} "
        f"steps; rewards and histogram in {report.with_suffix('')}.{{json,png}}"
    )


def agent_name(report: dict) -> str:
    """What a report evaluated, as its messages name it: the candidate, and how the controller
    read z when not as it was trained to ("mean", "mean, z mode"). Reports written before
    these were recorded read z by sampling, as their controllers were trained."""
    latent = report.get("latent", "sample")
    overridden = latent != report.get("trained_latent", "sample")
    return report["candidate"] + (f", z {latent}" if overridden else "")


def paired_difference(report: dict, other: dict) -> tuple[float, float] | None:
    """`report`'s mean reward minus `other`'s and the standard error of that difference, when
    both ran the same tracks (track seeds, env and episode length); else None. Pairing by track
    takes the tracks' luck, most of either report's std, out of the comparison."""
    keys = ("track_seeds", "env", "episode_length")
    if report.get("track_seeds") is None or any(report.get(k) != other.get(k) for k in keys):
        return None
    differences = np.subtract(report["rewards"], other["rewards"])
    if len(differences) < 2:
        return None
    return float(differences.mean()), float(differences.std(ddof=1) / np.sqrt(len(differences)))


def same_track_comparisons(report: dict, report_path: Path) -> list[str]:
    """The paired difference of `report`, saved as `report_path`, to every other report beside
    it on the same tracks, by generation, each as "generation N (candidate) +d ± se"."""
    comparisons = []
    for path in report_path.parent.glob("generation_*.json"):
        other = json.loads(path.read_text())
        difference = None if path == report_path else paired_difference(report, other)
        if difference is not None:
            comparisons.append((other["generation"], agent_name(other), *difference))
    return [
        f"generation {generation} ({name}) {mean:+.1f} ± {error:.1f}"
        for generation, name, mean, error in sorted(comparisons)
    ]


def save_histogram(path, rewards: np.ndarray, title: str) -> None:
    figure = histogram(rewards, title)
    with atomic_path(path) as temporary:
        figure.savefig(temporary, format="png")


def histogram(rewards: np.ndarray, title: str) -> Figure:
    """The rewards' histogram with their mean, and the solved line when it is near them."""
    figure = Figure(figsize=(6, 4))
    axes = figure.subplots()
    axes.hist(rewards, bins=min(30, max(5, len(rewards) // 3)), color="tab:blue")
    if rewards.max() >= SOLVED / 2:  # further off, the line would squash the bars out of sight
        axes.axvline(SOLVED, color="tab:red", linestyle="--", label=f"solved ({SOLVED})")
    axes.axvline(rewards.mean(), color="black", label=f"mean {rewards.mean():.0f}")
    axes.set(xlabel="total reward", ylabel="episodes", title=title)
    axes.legend()
    figure.tight_layout()
    return figure


if __name__ == "__main__":
    main()
