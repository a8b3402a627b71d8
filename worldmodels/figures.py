"""Figures of training runs: losses per step, CMA-ES fitness per generation, the learning curve
(the mean's evaluations against episodes and core-hours, beside the official run's published
points). `python -m worldmodels.plots` draws them for a home.
"""

from __future__ import annotations

import csv
import json
import math
import re
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from worldmodels import layout
from worldmodels.control.generations import load_summaries
from worldmodels.images import save_figure
from worldmodels.recipe_record import cma_es_step_last_generation, recipe_spans, step_core_seconds


def read_losses(path: Path) -> dict[str, np.ndarray]:
    with open(path, newline="") as file:
        rows = list(csv.DictReader(file))
    return {key: np.array([float(row[key]) for row in rows]) for key in rows[0]} if rows else {}


def plot_losses(
    losses: dict[str, np.ndarray],
    names: list[str],
    title: str,
    path: Path,
    validation: dict[str, np.ndarray] | None = None,
) -> None:
    """Training losses per step; the validation losses, if any, as markers in the same colour."""
    figure = Figure(figsize=(7, 4))
    axes = figure.subplots()
    for name in names:
        (line,) = axes.plot(losses["step"], losses[name], label=f"{name} (train)", alpha=0.8)
        if validation and name in validation:
            axes.plot(
                validation["step"],
                validation[name],
                "o-",
                color=line.get_color(),
                markeredgecolor="black",
                label=f"{name} (validation)",
            )
    axes.set(xlabel="step", title=title)
    axes.legend()
    save_figure(figure, path)


def plot_fitness(home: Path, path: Path, until: int | None = None) -> None:
    """Best, mean and worst fitness of each generation (through `until`) and the mean's
    evaluations, against generations and (top axis) the core-hours spent by then; dotted where
    V and M changed."""
    summaries = load_summaries(home, until)
    generations = [s["generation"] for s in summaries]
    hours, hours_label = run_core_hours(home, summaries)
    figure = Figure(figsize=(7, 4))
    axes = figure.subplots()
    for name in ("best", "mean", "worst"):  # markers too: a single generation is a point
        axes.plot(generations, [s[f"{name}_fitness"] for s in summaries], ".-", label=name)
    evaluated = [s for s in summaries if "evaluation" in s]
    if evaluated:
        axes.errorbar(
            [s["generation"] for s in evaluated],
            [s["evaluation"]["mean"] for s in evaluated],
            yerr=[s["evaluation"]["std"] for s in evaluated],
            fmt="o",
            label="mean controller, fresh tracks",
        )
    axes.axhline(900, color="grey", linestyle="--", label="solved (900)")
    mark_phases(axes, summaries, lambda i: generations[i] - 0.5)
    axes.set(xlabel="generation", ylabel="total reward", title="CMA-ES fitness")
    if len(generations) > 1:  # the axis maps generations to hours by interpolation
        axes.set_xlim(generations[0], generations[-1])  # beyond them it would clamp the hours
        top = axes.secondary_xaxis(
            "top",
            functions=(
                lambda g: np.interp(g, generations, hours),
                lambda h: np.interp(h, hours, generations),
            ),
        )
        ticks = MaxNLocator(8).tick_values(0, hours[-1])
        top.set_xticks(ticks[ticks <= hours[-1]])  # ticks past the end would pile up there
        top.set_xlabel(f"core-hours of {hours_label}")
    axes.legend(fontsize="small")
    save_figure(figure, path)


# The official run's log of its distribution mean's score (64 x 16 episodes a generation on
# 64 CPUs; SPEC.md section 5): generation -> (score, hours of wall time).
OFFICIAL_RUN = {25: (823.0, 15.6), 50: (867.0, 30.0)}
OFFICIAL_EPISODES_PER_GENERATION = 64 * 16
OFFICIAL_CPUS = 64


def core_hours(home: Path, summaries: list[dict]) -> np.ndarray:
    """Cumulative core-hours after each generation, evaluations of the mean excluded: its CPU
    seconds, driver and workers (`cpu_seconds`, recorded since 2026-12-07), else its wall
    seconds times the rollout workers the run held (control/run.json), or times one for a
    generation trained in the dream (its episodes run in the driver alone)."""
    workers = json.loads(layout.control_run_file(home).read_text())["command"]["num_process"]
    return np.cumsum([generation_core_seconds(s, workers) for s in summaries]) / 3600


def generation_core_seconds(summary: dict, workers: int) -> float:
    """A generation's core-seconds (`core_hours`' rule): its CPU seconds where recorded, else
    its wall seconds times `workers`, or times one in the dream."""
    if "cpu_seconds" in summary:
        return summary["cpu_seconds"]
    return summary["seconds"] * (1 if "dream" in summary else workers)


def recipe_core_hours(home: Path, summaries: list[dict]) -> np.ndarray | None:
    """Cumulative core-hours of a pipeline run after each generation of `summaries`, from its
    recipe.json: every step before the generation counts, sampling, V and M included (CPU
    time, `recipe_record.step_core_seconds`). A CMA-ES chunk's time is shared among its
    generations by their wall seconds; generations past the last finished chunk (one still
    running) count their wall seconds times the run's workers. None for a home no pipeline
    ran."""
    path = layout.recipe_record(home)
    if not path.exists():
        return None
    recipe = json.loads(path.read_text())
    cost = dict.fromkeys(steps_in_order(recipe), 0.0)  # every try of a step counts
    for name, span in recipe_spans(recipe):
        cost[name] += step_core_seconds(span)
    # Every generation's wall seconds, those past `summaries` too: a chunk is shared whole.
    seconds = {s["generation"]: s["seconds"] for s in load_summaries(home)}
    spent, first, ends = 0.0, 0, {}  # generation -> core-seconds spent when it finished
    for name, step_cost in cost.items():
        last = cma_es_step_last_generation(name)
        if last is not None:
            generations = range(first, last + 1)
            walls = np.cumsum([seconds.get(g, 0.0) for g in generations])
            ends |= dict(zip(generations, spent + step_cost * walls / max(walls[-1], 1e-9)))
            first = generations[-1] + 1
        spent += step_cost
    workers = json.loads(layout.control_run_file(home).read_text())["command"]["num_process"]
    hours, after = [], spent
    for s in summaries:
        if s["generation"] in ends:
            hours.append(ends[s["generation"]])
        else:
            after += generation_core_seconds(s, workers)
            hours.append(after)
    return np.array(hours) / 3600


def steps_in_order(recipe: dict) -> list[str]:
    """The names of the steps recipe.json records tries of, in the order they ran: the
    finished ones, with each CMA-ES chunk that never finished (interrupted as its last
    generation completed, the resumed run went on with the next chunk) before the first
    finished step after it: a later chunk of its iteration, or a later iteration's step."""

    def position(name: str) -> tuple[float, float]:
        iteration = re.match(r"iteration (\d+):", name)
        last = cma_es_step_last_generation(name)
        return (
            int(iteration.group(1)) if iteration else math.inf,  # validation, test: the end
            last if last is not None else -math.inf,  # sampling, V and M: before CMA-ES
        )

    order = list(recipe["steps"])
    for name in dict.fromkeys(name for name, _ in recipe_spans(recipe)):
        if name not in order:
            later = [i for i, step in enumerate(order) if position(step) > position(name)]
            order.insert(later[0] if later else len(order), name)
    return order


def run_core_hours(home: Path, summaries: list[dict]) -> tuple[np.ndarray, str]:
    """Cumulative core-hours after each generation of `summaries` and what they count: the
    whole run's for a pipeline run (`recipe_core_hours`), else controller training's
    (`core_hours`)."""
    hours = recipe_core_hours(home, summaries)
    if hours is not None:
        return hours, "the whole run"
    return core_hours(home, summaries), "controller training"


def world_model_changes(summaries: list[dict]) -> list[int]:
    """Indices into `summaries` of the generations whose V and M differ from the previous
    generation's (iteration two's retraining: the search goes on from its distribution on the
    new ones, and its score drops first). Summaries written before generations recorded their
    world model count as unchanged."""
    models = [s.get("world_model") for s in summaries]
    return [
        i
        for i in range(1, len(models))
        if None not in models[i - 1 : i + 1] and models[i] != models[i - 1]
    ]


def latent_changes(summaries: list[dict]) -> list[int]:
    """Indices into `summaries` of the generations whose controllers read z otherwise than the
    previous generation's (`train_controller --latent` changed on a resume)."""
    latents = [s["latent"] for s in summaries]
    return [i for i in range(1, len(latents)) if latents[i] != latents[i - 1]]


def mark_phases(axes, summaries: list[dict], position) -> None:
    """Dotted vertical lines where V and M were retrained and where the controller's reading
    of z changed, at x = `position(index into summaries)`, each kind labelled once."""
    for n, i in enumerate(world_model_changes(summaries)):
        label = None if n else "V and M retrained on the agent's episodes"
        axes.axvline(position(i), color="tab:orange", linestyle=":", label=label)
    for i in latent_changes(summaries):
        label = f"controller reads z's {summaries[i]['latent']} from here"
        axes.axvline(position(i), color="tab:purple", linestyle=":", label=label)


def plot_learning_curve(home: Path, path: Path, until: int | None = None) -> bool:
    """The mean's evaluations on fresh tracks (through generation `until`) against the episodes
    and the core-hours spent, beside the official run's published points, with the run's
    phases marked; False when nothing was evaluated."""
    return plot_learning_curves({"this run: mean controller": (home, until)}, path)


def plot_learning_curves(runs: dict[str, tuple[Path, int | None]], path: Path) -> bool:
    """Each run's (label -> (home, last generation or None)) mean evaluated on fresh tracks
    against the episodes of controller training and the core-hours spent (`run_core_hours`),
    beside the official run's published points; a single run's phases are marked. False when
    no run was evaluated."""
    curves = []
    for label, (home, until) in runs.items():
        summaries = load_summaries(home, until)
        evaluated = [i for i, s in enumerate(summaries) if "evaluation" in s]
        if evaluated:
            hours, hours_label = run_core_hours(home, summaries)
            curves.append((label, summaries, evaluated, hours, hours_label))
    if not curves:
        return False
    official = {
        "episodes": [g * OFFICIAL_EPISODES_PER_GENERATION for g in OFFICIAL_RUN],
        "core-hours": [h * OFFICIAL_CPUS for _, h in OFFICIAL_RUN.values()],
    }
    official_scores = [score for score, _ in OFFICIAL_RUN.values()]
    several = len(curves) > 1
    figure = Figure(figsize=(11, 4 + 0.3 * len(curves) * several), layout="constrained")
    for axes, name in zip(figure.subplots(1, 2), ("episodes", "core-hours")):
        for label, summaries, evaluated, hours, hours_label in curves:
            ours = np.cumsum([s["episodes"] for s in summaries]) if name == "episodes" else hours
            if several:
                label = f"{label} (core-hours of {hours_label})"
            x = ours[evaluated]
            means = np.array([summaries[i]["evaluation"]["mean"] for i in evaluated])
            stds = np.array([summaries[i]["evaluation"]["std"] for i in evaluated])
            if not several:
                axes.errorbar(x, means, yerr=stds, fmt="o-", label=label)
                mark_phases(axes, summaries, lambda i: ours[i - 1])  # noqa: B023, called at once
            else:  # bands, not bars: several runs' bars hide each other
                (line,) = axes.plot(x, means, ".-", label=label)
                axes.fill_between(x, means - stds, means + stds, color=line.get_color(), alpha=0.15)
        axes.plot(official[name], official_scores, "s", color="black", label="official run")
        for generation, x, score in zip(OFFICIAL_RUN, official[name], official_scores):
            axes.annotate(
                f"gen {generation}", (x, score), textcoords="offset points", xytext=(4, -12)
            )
        axes.axhline(900, color="grey", linestyle="--", label="solved (900)")
        xlabel = "episodes of controller training"
        if name == "core-hours":
            counted = {curve[4] for curve in curves}
            xlabel = f"core-hours of {counted.pop()}" if len(counted) == 1 else "core-hours"
        axes.set(xscale="log", xlabel=f"{xlabel} (log)", ylabel="score (mean ± std over tracks)")
        if not several:
            axes.legend(loc="lower right", fontsize="small", framealpha=0.9)
    if several:  # one legend below both panels: the curves fill them
        figure.legend(*axes.get_legend_handles_labels(), loc="outside lower center", ncol=2)
    figure.suptitle("the distribution mean's score on fresh tracks")
    save_figure(figure, path)
    return True
