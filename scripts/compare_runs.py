"""Controller runs side by side: the distribution mean's score on fresh tracks against the
episodes of controller training and against core-hours, beside the official run's points.

    git archive a1f43da^ runs/budget2-it3-mode/control | tar -x -C /tmp   # the first agent's
    python scripts/compare_runs.py --run "recipe=~/wm-recipe" \\
        --run "first agent=/tmp/runs/budget2-it3-mode:249" --out recipe-vs-first-agent.png

Each `--run LABEL=HOME[:GENERATION]` is an experiments home with a CMA-ES run (through
GENERATION when given: the shipped one, say). A pipeline run's core-hours are its whole run's,
every stage included, as recipe.json measured them; another run's are its controller
training's (wall seconds times its workers): the labels say which. Prints one line per run:
its best evaluation, at which generation, episodes and core-hours.
"""

import argparse
from pathlib import Path

import numpy as np

from worldmodels import figures
from worldmodels.control.generations import best_evaluated, load_summaries


def parse_run(text: str) -> tuple[str, tuple[Path, int | None]]:
    """LABEL=HOME[:GENERATION] -> (LABEL, (HOME, GENERATION or None))."""
    label, separator, where = text.partition("=")
    if not separator or not label:
        raise argparse.ArgumentTypeError(f"expected LABEL=HOME[:GENERATION], got {text!r}")
    home, _, until = where.partition(":")
    if until and not until.isdigit():
        raise argparse.ArgumentTypeError(f"GENERATION must be a number, got {until!r} in {text!r}")
    path = Path(home).expanduser()
    if not load_summaries(path):
        raise argparse.ArgumentTypeError(f"{path} has no complete CMA-ES generation")
    return label, (path, int(until) if until else None)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--run", type=parse_run, action="append", required=True,
                        help="LABEL=HOME[:GENERATION], once per run")  # fmt: skip
    parser.add_argument("--out", type=Path, required=True, help="the PNG to write")
    args = parser.parse_args()
    runs = dict(args.run)
    for label, (home, until) in runs.items():
        summaries = load_summaries(home, until)
        hours, counted = figures.run_core_hours(home, summaries)
        episodes = np.cumsum([s["episodes"] for s in summaries])
        generation = best_evaluated(summaries)
        if generation is None:
            print(f"{label}: {len(summaries)} generations, none evaluated")
            continue
        best = [s["generation"] for s in summaries].index(generation)
        evaluation = summaries[best]["evaluation"]
        print(
            f"{label}: best {evaluation['mean']:.1f} ± {evaluation['std']:.1f} on "
            f"{len(evaluation['rewards'])} tracks at generation {summaries[best]['generation']}"
            f" ({episodes[best]:,} episodes, {hours[best]:.1f} core-hours of {counted}); "
            f"{len(summaries)} generations, {hours[-1]:.1f} core-hours in all"
        )
    if not figures.plot_learning_curves(runs, args.out):
        raise SystemExit("error: no run has an evaluation of its mean to draw")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
