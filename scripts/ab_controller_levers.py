"""A/B of CMA-ES levers on one recipe run's V and M: the same seeds, tracks and settings as its
first iteration, one setting changed per arm, side by side with the run itself.

    python scripts/ab_controller_levers.py --recipe-home /root/wm-runs/recipe \
        --out /root/wm-runs/ab --generations 20 --arms mu stall-100

Each arm is a copy of the recipe home's V and M (`<out>/<arm>/`) on which `train_controller`
runs the recipe's own iteration-1 command (`control/run.json`'s), `--generations` of it, with
the arm's change: `mu` reads mu from generation 0 (`--latent mode`); `mu-32x4` does too with
32 candidates of 4 episodes each (the same episodes per generation as 16 x 8); `stall-K` ends a
training episode once it gains no tile for K steps (`--stall-steps K`). The baseline is the
recipe's own run through the same generations, whose summaries and evaluations (on the same
tracks: the same seed streams) are already in its home. Rerunning resumes each arm where it stopped.

Prints, per arm, the evaluation of the distribution mean at every evaluated generation (16
tracks of the training-evaluation stream, the same ones for every arm), the environment steps
the training episodes took and the CPU-hours they cost (each generation's recorded CPU seconds
with its evaluation's, over the generations that recorded them, "(k of n gens)"; for the
baseline the recipe's recorded CPU seconds of its CMA-ES steps), and writes it all to
`<out>/ab.json`.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
from pathlib import Path

from worldmodels import layout
from worldmodels.recipe_record import cma_es_step_last_generation, step_core_seconds

# What an arm changes in the recipe's command, by name ("stall-K": --stall-steps K).
ARMS = {
    "mu": {"latent": "mode"},
    # The budget preset's population (16 x 8 episodes) against twice the candidates, each on
    # half the episodes: the same 128 episodes a generation, reading mu as the preset does.
    "mu-32x4": {"latent": "mode", "popsize": 32, "episodes_per_candidate": 4},
}


def arm_changes(name: str) -> dict:
    if name.startswith("stall-") and name[len("stall-") :].isdigit():
        return {"stall_steps": int(name[len("stall-") :])}
    if name in ARMS:
        return ARMS[name]
    raise SystemExit(f"error: unknown arm {name!r}; expected one of {list(ARMS)} or stall-K")


def command_flags(recorded: dict, generations: int, home: Path, changes: dict) -> list[str]:
    """train_controller's flags for the recorded command with `changes`, on `home`."""
    values = {**recorded, **changes, "generations": generations, "home": str(home)}
    flags = []
    for name, value in values.items():
        if value is None or value is False:
            continue
        flag = "--" + name.replace("_", "-")
        flags += [flag] if value is True else [flag, str(value)]
    return flags


def curve(home: Path, generations: int) -> dict:
    """Evaluations of the mean by generation, each generation's training steps and its CPU
    seconds with its evaluation's (None for a generation recorded before they were), through
    generation `generations` - 1 or the last complete one."""
    from worldmodels.control.generations import complete_generations, load_summary

    evaluations, steps, cpu = {}, [], []
    for generation in [g for g in complete_generations(home) if g < generations]:
        summary = load_summary(home, generation)
        steps.append(summary["steps"])
        evaluation = summary.get("evaluation", {})
        if evaluation:
            evaluations[generation] = (evaluation["mean"], evaluation["std"])
        if "cpu_seconds" in summary:
            cpu.append(summary["cpu_seconds"] + evaluation.get("cpu_seconds", 0.0))
        else:
            cpu.append(None)
    return {"evaluations": evaluations, "steps": steps, "cpu_seconds": cpu}


def baseline_cpu_hours(recipe_home: Path, generations: int) -> float | None:
    """The recipe's recorded CPU seconds of its CMA-ES steps through generation
    `generations` - 1, in hours; None when its steps do not end there."""
    steps = json.loads(layout.recipe_record(recipe_home).read_text())["steps"]
    total, last = 0.0, -1
    for name, step in steps.items():
        through = cma_es_step_last_generation(name)
        if through is not None and through < generations:
            total += step_core_seconds(step)
            last = max(last, through)
    return total / 3600 if last == generations - 1 else None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--recipe-home", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--generations", type=int, default=20)
    parser.add_argument("--arms", nargs="+", default=["mu", "stall-100"])
    parser.add_argument("--num-process", type=int, default=None, help="default: the recipe's")
    parser.add_argument(
        "--report", action="store_true", help="print the table of what the arms hold, train nothing"
    )
    args = parser.parse_args()

    from worldmodels.control import train_controller

    recorded = json.loads(layout.control_run_file(args.recipe_home).read_text())
    if recorded.get("earlier_phases"):
        raise SystemExit("error: the recipe's controller changed phase; compare its first one")
    flags = vars(train_controller.parse_args([]))  # a record may hold settings it has no flag for
    command = {
        name: value
        for name, value in recorded["command"].items()
        if name in flags and name not in ("home", "generations")
    }
    if args.num_process:
        command["num_process"] = args.num_process
    results = {
        "baseline": {
            **curve(args.recipe_home, args.generations),
            "cpu_seconds": None,  # its cost is the recipe's record of its steps:
            "cpu_hours": baseline_cpu_hours(args.recipe_home, args.generations),
        }
    }
    for arm in args.arms:
        changes = arm_changes(arm)
        home = args.out / arm
        for stage in (layout.vae_training, layout.memory_training):
            if not stage(home).exists():
                shutil.copytree(stage(args.recipe_home), stage(home))
        if not args.report:
            flags = command_flags(command, args.generations, home, changes)
            print(f"== {arm}: train_controller {' '.join(flags)}", flush=True)
            subprocess.run(
                [sys.executable, "-m", "worldmodels.control.train_controller", *flags], check=True
            )
        arm_curve = curve(home, args.generations)
        measured = [seconds for seconds in arm_curve["cpu_seconds"] if seconds is not None]
        hours = sum(measured) / 3600 if measured else None
        results[arm] = {**arm_curve, "cpu_hours": hours, **changes}

    (args.out / "ab.json").write_text(json.dumps(results, indent=2) + "\n")
    generations = sorted({g for r in results.values() for g in r["evaluations"]})
    print(
        "arm        "
        + "".join(f"  gen {g:<10}" for g in generations)
        + "     steps  of baseline  CPU-h"
    )
    baseline_steps = results["baseline"]["steps"]
    for arm, result in results.items():
        cells = "".join(
            f"  {result['evaluations'][g][0]:5.1f} ± {result['evaluations'][g][1]:5.1f}"
            if g in result["evaluations"]
            else " " * 16
            for g in generations
        )
        hours = f"{result['cpu_hours']:.2f}" if result["cpu_hours"] is not None else "?"
        steps = result["steps"]  # against the baseline's over the same generations
        share = sum(steps) / sum(baseline_steps[: len(steps)])
        cpu = result.get("cpu_seconds")  # the arms': generations recorded before it have none
        counted = sum(seconds is not None for seconds in cpu) if cpu else len(steps)
        measured = f"{counted} of {len(steps)}" if counted < len(steps) else f"{len(steps)}"
        print(f"{arm:<10}{cells}  {sum(steps):>9}  {share:>10.0%}  {hours}  ({measured} gens)")


if __name__ == "__main__":
    main()
