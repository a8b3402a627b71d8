"""Evaluating an agent the paper's way (mean ± std of total reward over random tracks), its
report, histogram and paired comparisons (`worldmodels.control.evaluate`, its command)."""

from __future__ import annotations

import json
import sys
from functools import partial
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from worldmodels import layout
from worldmodels.control.generations import controller_spec, load_agent_controller
from worldmodels.control.rollouts import (
    EpisodeTask,
    RolloutWorker,
    rollout_config,
    run_episode_tasks,
)
from worldmodels.files import atomic_path, atomic_write_text
from worldmodels.params import EnvParams
from worldmodels.records import load_report
from worldmodels.seeds import SEED_SCHEME, TEST_TRACKS_SEED, Stream, derive_seed
from worldmodels.workers import WorkerError, open_pool

SOLVED = 900  # CarRacing's bar: a mean of 900 over 100 episodes


def evaluate_agent(
    home: Path,
    generation: str = "best",
    candidate: str = "mean",
    episodes: int = 100,
    seed: int = TEST_TRACKS_SEED,
    latent: str | None = None,
    env_params: EnvParams = EnvParams(),
    *,
    num_process: int = 1,
    envs_per_worker: int = 16,
    worker_timeout: float = 600.0,
    backend: str = "local",
    ray_address: str | None = None,
    compare_with: dict[str, dict] | None = None,
) -> str:
    """Runs `candidate` of the home's `generation` (N, max or best) on `episodes` tracks of
    `seed`'s stream, its z read by `latent` (None: as it was trained), writes the report and
    its histogram, and returns the summary lines (with the paired differences to reports on
    the same tracks beside it, and to the reports of `compare_with`, name -> report, from
    anywhere: another home's agent, say)."""
    generation, controller, trained_latent = load_agent_controller(home, generation, candidate)
    latent = latent or trained_latent

    config = rollout_config(
        home,
        env_params,
        envs_per_worker,
        controller_spec(home),
        latent,
        backend,
    )
    seeds = [derive_seed(seed, Stream.EVALUATION_TRACKS, j) for j in range(episodes)]
    tasks = [EpisodeTask(j, controller, seed) for j, seed in enumerate(seeds)]
    try:
        with open_pool(
            backend,
            partial(RolloutWorker, config),
            min(num_process, len(tasks)),
            worker_timeout,
            ray_address,
        ) as pool:
            results = run_episode_tasks(pool, tasks, envs_per_worker, "evaluating")
    except WorkerError as error:
        sys.exit(f"error: {error}")
    ran = [results[j] for j in range(episodes)]
    rewards = np.array([episode.total_reward for episode in ran])
    laps = sum(episode.lap_finished for episode in ran)

    record = {
        "generation": generation,
        "candidate": candidate,
        "mean": float(rewards.mean()),
        "std": float(rewards.std()),
        "rewards": rewards.tolist(),
        "steps": [episode.steps for episode in ran],
        "lap_finished": [episode.lap_finished for episode in ran],
        "seed": seed,
        "track_seeds": seeds,
        "env": env_params.env,
        "seed_scheme": SEED_SCHEME,
        "episode_length": env_params.episode_length,
        "latent": latent,
        "trained_latent": trained_latent,
    }
    overridden = None if latent == trained_latent else latent
    report = layout.evaluation_file(home, generation, candidate, seed, latent=overridden)
    report.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(report, json.dumps(record, indent=2))
    title = f"generation {generation} ({agent_name(record)})"
    save_histogram(report.with_suffix(".png"), rewards, title)
    lines = []
    comparisons = same_track_comparisons(record, report)
    if comparisons:
        lines.append(f"on the same tracks, this minus {', '.join(comparisons)} (± standard error)")
    lines += [compared(record, name, other) for name, other in (compare_with or {}).items()]
    lines.append(
        f"generation {generation} ({agent_name(record)}): "
        f"{rewards.mean():.1f} ± {rewards.std():.1f} "
        f"over {len(ran)} episodes, {laps} finished their lap within {env_params.episode_length} "
        f"steps; rewards and histogram in {report.with_suffix('')}.{{json,png}}"
    )
    return "\n".join(lines)


def agent_name(report: dict) -> str:
    """What a report evaluated, as its messages name it: the candidate, and how the controller
    read z when not as it was trained to ("mean", "mean, z mode")."""
    overridden = report["latent"] != report["trained_latent"]
    return report["candidate"] + (f", z {report['latent']}" if overridden else "")


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


def compared(report: dict, name: str, other: dict) -> str:
    """`report` against `other` (named `name`) track by track, with the verdict a replacement
    rule reads: better or worse by more than two paired standard errors, or within them."""
    difference = paired_difference(report, other)
    if difference is None:
        return (
            f"against {name}: not paired, it ran other tracks (its seed {other.get('seed')}, "
            f"env {other.get('env')}, {len(other['rewards'])} episodes of "
            f"{other.get('episode_length')} steps)"
        )
    mean, error = difference
    if abs(mean) > 2 * error:
        verdict = f"{'better' if mean > 0 else 'worse'} by more than two standard errors"
    else:
        verdict = "within two standard errors"
    return (
        f"against {name} ({other['mean']:.1f} on the same {len(other['rewards'])} tracks): "
        f"this minus it {mean:+.1f} ± {error:.1f} (paired standard error), {verdict}"
    )


def same_track_comparisons(report: dict, report_path: Path) -> list[str]:
    """The paired difference of `report`, saved as `report_path`, to every other report beside
    it on the same tracks, by generation, each as "generation N (candidate) +d ± se"."""
    comparisons = []
    for path in report_path.parent.glob("generation_*.json"):
        other = load_report(path)
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
