"""Controllers trained in the dream against one trained in CarRacing, on the same V and M.

    python scripts/compare_dream.py --real ~/world-models-runs/budget2 \
        --dream ~/world-models-runs/dream2-t100 ~/world-models-runs/dream2-t115 --out dream.png

Every home is a controller run of `train_controller` (the dream homes with `--in-dream`; a
dream home resumed without it, a warm start, goes on in CarRacing and is labelled so). The
figure has two panels. Left: the distribution mean's score in the real CarRacing during
training (its evaluations every `--eval-every` generations) against the core-hours of
controller training (`figures.core_hours`: a dream generation counts one core); a 100-track
evaluation of a home (`evaluate --episodes 100`) is drawn as a larger marker at the hours its
generation was reached. Right, for the dream runs: the population's mean fitness as M
predicts it beside the mean's real score, generation by generation; where the first climbs and
the second does not, the controller exploits M. Prints a Markdown table, a row per run: its
generations and core-hours, its last dream fitness, its best real evaluation and its 100-track
evaluations.

What a run spends outside its generations counts too where its home says so: each line
`GENERATION:USER:SYSTEM:COMMAND` of `<home>/other-costs.txt` (what GNU time writes with
`-f "N:%U:%S:%C"` around a command run after generation N: real episodes sampled to retrain
M, M's retraining) adds its CPU seconds from generation N + 1 on.
"""

import argparse
import json
import re
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from worldmodels import figures, layout
from worldmodels.control.generations import best_evaluated, load_summaries
from worldmodels.images import save_figure
from worldmodels.records import read_run


def other_core_hours(home: Path, generations: np.ndarray) -> np.ndarray:
    """Cumulative core-hours after each of `generations` of the costs <home>/other-costs.txt
    records (zeros without one; GNU time's other lines, such as a failed command's exit
    status, are skipped)."""
    hours = np.zeros(len(generations))
    path = home / "other-costs.txt"
    for line in path.read_text().splitlines() if path.exists() else []:
        after, user, system, _ = (line.split(":", 3) + ["", "", ""])[:4]
        if after.isdigit():
            hours[generations > int(after)] += (float(user) + float(system)) / 3600
    return hours


def datasets_label(names: list[str]) -> str:
    """Dataset names joined with "+", each run of numbered ones shortened: ["agent-random",
    "onpolicy-1", "onpolicy-2", "onpolicy-3"] -> "agent-random + onpolicy-1..3"."""
    runs: list[list] = []  # [prefix, first, last] of numbered names; [name, None, None]
    for name in names:
        numbered = re.fullmatch(r"(.*-)(\d+)", name)
        if numbered is None:
            runs.append([name, None, None])
            continue
        prefix, number = numbered[1], int(numbered[2])
        if runs and runs[-1][0] == prefix and runs[-1][2] == number - 1:
            runs[-1][2] = number
        else:
            runs.append([prefix, number, number])
    return " + ".join(
        name if first is None else f"{name}{first}" + (f"..{last}" if last > first else "")
        for name, first, last in runs
    )


def controller_run(home: Path) -> dict:
    """What the figure needs of one home's controller run."""
    summaries = load_summaries(home)
    if not summaries:
        raise SystemExit(f"error: {home} has no complete generation")
    generations = np.array([s["generation"] for s in summaries])
    hours = figures.core_hours(home, summaries) + other_core_hours(home, generations)
    evaluated = [i for i, s in enumerate(summaries) if "evaluation" in s]
    final = {}
    for path in sorted(layout.evaluations(home).glob("generation_*-mean.json")):
        rewards = np.array(json.loads(path.read_text())["rewards"])
        generation = int(path.stem.split("_")[1].split("-")[0])
        if len(rewards) >= 100 and generation <= summaries[-1]["generation"]:
            final[generation] = rewards
    dreamed = [s for s in summaries if "dream" in s]
    label = "real CarRacing"
    if dreamed:
        dream = dreamed[-1]["dream"]
        datasets = datasets_label(layout.trained_datasets(layout.memory_training(home)))
        label = f"dream, M on {datasets} data, tau {dream['temperature']}"
        memory = read_run(layout.memory_training(home))["settings"]
        if memory["reward_overprediction_weight"] != 1:
            label += f", over-prediction x{memory['reward_overprediction_weight']:g}"
        if dream.get("disagreement_penalty"):
            label += (
                f", {memory['reward_done_ensemble']} heads, penalty "
                f"{dream['disagreement_penalty']:g} x their std"
            )
        if "horizon" in dream:
            label += f", {dream['horizon']} steps"
        if len(dreamed) < len(summaries):  # a warm start: on in CarRacing from the dream's end
            label += f"; CarRacing from generation {dreamed[-1]['generation'] + 1}"
    return {
        "label": label,
        "dream": bool(dreamed),
        "generation": generations,
        "hours": hours,
        "fitness": np.array([s["mean_fitness"] for s in summaries]),
        "evaluated": evaluated,
        "score": np.array([summaries[i]["evaluation"]["mean"] for i in evaluated]),
        "score_std": np.array([summaries[i]["evaluation"]["std"] for i in evaluated]),
        "final": final,
        "best": {s["generation"]: s for s in summaries}.get(best_evaluated(summaries)),
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter
    )
    parser.add_argument("--real", required=True, help="home of the controller trained for real")
    parser.add_argument("--dream", nargs="+", required=True, help="homes trained in the dream")
    parser.add_argument("--out", default="dream-vs-real.png", help="the figure (PNG)")
    args = parser.parse_args()
    runs = [controller_run(Path(home).expanduser()) for home in [args.real, *args.dream]]

    # The legend below both panels: a label names a run's data and settings, long for a panel.
    figure = Figure(figsize=(12, 4.5 + 0.25 * len(runs)), layout="constrained")
    left, right = figure.subplots(1, 2)
    for index, run in enumerate(runs):
        color = f"C{index}"
        hours = run["hours"]
        left.errorbar(
            hours[run["evaluated"]],
            run["score"],
            yerr=run["score_std"],
            fmt="o-",
            color=color,
            markersize=3,
            label=run["label"],
        )
        for generation, rewards in run["final"].items():
            at = hours[list(run["generation"]).index(generation)]
            left.errorbar(at, rewards.mean(), yerr=rewards.std(), fmt="*", color=color, ms=14)
        if run["dream"]:
            right.plot(run["generation"], run["fitness"], "--", color=color)
            right.plot(
                run["generation"][run["evaluated"]], run["score"], "o-", color=color, markersize=3
            )
    left.set(
        xscale="log",
        xlabel="core-hours of controller training (log)",
        ylabel="score in CarRacing",
        title="the mean on unseen tracks (16; stars: 100)",
    )
    right.set(
        xlabel="generation",
        ylabel="total reward",
        title="dashed: fitness in M; solid: the mean in CarRacing",
    )
    figure.legend(*left.get_legend_handles_labels(), loc="outside lower center")
    save_figure(figure, Path(args.out))

    print("| run | generations | core-hours | dream fitness, last generation | "
          "best mean on 16 tracks | on 100 tracks |")  # fmt: skip
    print("|---|---|---|---|---|---|")
    for run in runs:
        best = run["best"]
        cells = [
            run["label"],
            str(run["generation"][-1] + 1),
            f"{run['hours'][-1]:.2f}",
            f"{run['fitness'][-1]:.1f}" if run["dream"] else "",
            (
                f"{best['evaluation']['mean']:.0f} ± {best['evaluation']['std']:.0f} "
                f"(generation {best['generation']})"
            )
            if best is not None
            else "",
            "; ".join(
                f"generation {generation}: {rewards.mean():.0f} ± {rewards.std():.0f}"
                for generation, rewards in run["final"].items()
            ),
        ]
        print(f"| {' | '.join(cells)} |")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
