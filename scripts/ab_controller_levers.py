"""A/B of CMA-ES levers on one recipe run's V and M: the same seeds, tracks and settings as the
run itself, one setting changed per arm, side by side with the run.

    python scripts/ab_controller_levers.py --recipe-home /root/wm-runs/recipe \
        --out /root/wm-runs/ab --generations 20 --arms mu stall-100

    python scripts/ab_controller_levers.py --recipe-home /root/wm-runs/recipe2 \
        --out /root/wm-runs/ab-schedule --from-generation 54 --generations 10 \
        --arms episodes-16 --validate 64 74

Each arm is a copy of the recipe home's V and M (`<out>/<arm>/`) on which `train_controller`
runs the recipe's own command (`control/run.json`'s), `--generations` of it, with the arm's
change: `mu` reads mu from generation 0 (`--latent mode`); `mu-32x4` does too with 32
candidates of 4 episodes each (the same episodes per generation as 16 x 8); `stall-K` ends a
training episode once it gains no tile for K steps (`--stall-steps K`); `episodes-K` runs each
candidate on K episodes (`--episodes-per-candidate K`). The baseline is the recipe's own run
over the same generations, whose summaries and evaluations (on the same tracks: the same seed
streams) are already in its home. Rerunning resumes each arm where it stopped.

Without `--from-generation` the arms start at generation 0, on the V and M of the recipe's
first iteration (its only phase so far). With `--from-generation G` they start from the
recipe's CMA-ES state after generation G (its optimizer state must still be kept: the latest
`keep_optimizer_states` generations of an iteration's end are) on the recipe's latest V and M,
which must be the ones its generations after G train on: an A/B inside a later iteration, at
no cost for the baseline. The arms then train generations G+1 to G+N.

Prints, per arm, the evaluation of the distribution mean at every evaluated generation (16
tracks of the training-evaluation stream, the same ones for every arm), the environment steps
the training episodes took and the CPU-hours they cost (each generation's recorded CPU seconds
with its evaluation's, over the generations that recorded them, "(k of n gens)"; for the
baseline the recipe's recorded CPU seconds of its CMA-ES steps), and writes it all to
`<out>/ab.json`. `--validate GEN...` also evaluates the mean of each listed generation that an
arm or the baseline has on the recipe's validation tracks (`evaluate --seed 1 --episodes 100`:
the tracks its ship step decides on), and prints each arm's against the baseline's, paired
track by track: sixteen tracks cannot tell arms apart that a hundred can.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
from pathlib import Path

from worldmodels import layout
from worldmodels.files import atomic_write_text
from worldmodels.recipe_record import cma_es_step_last_generation, step_core_seconds

# What an arm changes in the recipe's command, by name (and "stall-K", "episodes-K").
ARMS = {
    "mu": {"latent": "mode"},
    # The budget preset's population (16 x 8 episodes) against twice the candidates, each on
    # half the episodes: the same 128 episodes a generation, reading mu as the preset does.
    "mu-32x4": {"latent": "mode", "popsize": 32, "episodes_per_candidate": 4},
}
NUMBERED_ARMS = {"stall-": "stall_steps", "episodes-": "episodes_per_candidate"}


def arm_changes(name: str) -> dict:
    for prefix, setting in NUMBERED_ARMS.items():
        if name.startswith(prefix) and name[len(prefix) :].isdigit():
            return {setting: int(name[len(prefix) :])}
    if name in ARMS:
        return ARMS[name]
    raise SystemExit(
        f"error: unknown arm {name!r}; expected one of {list(ARMS)}, stall-K or episodes-K"
    )


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


def curve(home: Path, first: int, end: int | None) -> dict:
    """Evaluations of the mean by generation, each generation's training steps and its CPU
    seconds with its evaluation's (None for a generation recorded before they were), over
    the complete generations from `first` to before `end` (None: the last)."""
    from worldmodels.control.generations import complete_generations, load_summary

    evaluations, steps, cpu = {}, [], []
    for generation in complete_generations(home):
        if generation < first or (end is not None and generation >= end):
            continue
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


def baseline_cpu_hours(recipe_home: Path, first: int, end: int) -> float | None:
    """The recipe's recorded CPU seconds of its CMA-ES steps over generations `first` to
    `end` - 1, in hours; None when its steps do not end at `end` - 1."""
    steps = json.loads(layout.recipe_record(recipe_home).read_text())["steps"]
    total, last = 0.0, -1
    for name, step in steps.items():
        through = cma_es_step_last_generation(name)
        if through is not None and first <= through < end:
            total += step_core_seconds(step)
            last = max(last, through)
    return total / 3600 if last == end - 1 else None


def copy_whole(source: Path, destination: Path) -> None:
    """Copies folder `source` to `destination` unless it exists: whole or not at all (a killed
    copy leaves a hidden partial one, which the next replaces)."""
    if destination.exists():
        return
    partial = destination.with_name(f".{destination.name}.partial")
    shutil.rmtree(partial, ignore_errors=True)
    shutil.copytree(source, partial)
    partial.rename(destination)


def copy_world_model(recipe_home: Path, home: Path) -> None:
    for stage in (layout.vae_training, layout.memory_training):
        copy_whole(stage(recipe_home), stage(home))


def copy_generations(recipe_home: Path, home: Path, numbers: list[int]) -> None:
    """The recipe's control/run.json and generations `numbers` (those it has), into `home`."""
    layout.generations(home).mkdir(parents=True, exist_ok=True)
    if not layout.control_run_file(home).exists():
        shutil.copy(layout.control_run_file(recipe_home), layout.control_run_file(home))
    for number in numbers:
        source = layout.generation(recipe_home, number)
        if (source / "complete").exists():
            copy_whole(source, layout.generation(home, number))


def forked_command(recorded: dict, fork: int) -> dict:
    """The recipe's command in force after generation `fork`; exits if a phase began later."""
    later = [p for p in recorded.get("earlier_phases", []) if p["until_generation"] > fork + 1]
    if later:
        raise SystemExit(
            f"error: the recipe's controller changed phase at generation "
            f"{later[0]['until_generation']}, after {fork + 1}; fork at a generation of its "
            "latest phase"
        )
    return recorded["command"]


def check_world_model(recipe_home: Path, first: int, models: Path) -> None:
    """Exits unless the V and M copied into `models` are those the recipe's generation `first`
    trains on (when it has one yet)."""
    from worldmodels.control.generations import complete_generations, load_summary
    from worldmodels.world_model import world_model_id

    if first in complete_generations(recipe_home):
        if load_summary(recipe_home, first).get("world_model") != world_model_id(models):
            raise SystemExit(
                f"error: the recipe's generation {first} trained on other V and M than its "
                f"checkpoints copied into {models}; the arms would not share its world model"
            )


def copy_fork(recipe_home: Path, home: Path, fork: int) -> None:
    """The recipe's generations up to `fork`, with `fork`'s optimizer state, into `home`."""
    if not layout.generation(home, fork).exists():
        optimizer = layout.generation(recipe_home, fork) / "optimizer.pkl"
        if not optimizer.exists():
            raise SystemExit(
                f"error: --from-generation {fork}: {optimizer.parent} keeps no optimizer state "
                "(only the latest generations of a run do)"
            )
    copy_generations(recipe_home, home, list(range(fork + 1)))


def validate(home: Path, generation: int, episodes: int, command: dict) -> dict:
    """The report of `evaluate` on the validation tracks (seed 1) of generation `generation`'s
    mean in `home`, in the environment and with the workers of the recipe's `command`;
    evaluates it the first time."""
    from worldmodels.records import load_report

    report = layout.evaluation_file(home, generation, seed=1)
    if not report.exists():
        flags = ["--home", str(home), "--generation", str(generation), "--seed", "1"]
        flags += ["--episodes", str(episodes)]
        for name in ("env", "episode_length", "num_process", "envs_per_worker"):
            flags += ["--" + name.replace("_", "-"), str(command[name])]
        print(f"== evaluate {' '.join(flags)}", flush=True)
        subprocess.run([sys.executable, "-m", "worldmodels.control.evaluate", *flags], check=True)
    return load_report(report)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--recipe-home", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--generations", type=int, default=20, help="the arms' generations")
    parser.add_argument("--arms", nargs="+", default=["mu", "stall-100"])
    parser.add_argument(
        "--from-generation",
        type=int,
        default=None,
        help="start the arms from the recipe's CMA-ES after this generation (default: from 0)",
    )
    parser.add_argument(
        "--validate",
        type=int,
        nargs="*",
        default=[],
        metavar="GEN",
        help="generations to evaluate on the 100 validation tracks, in every arm that has them",
    )
    parser.add_argument("--validation-episodes", type=int, default=100)
    parser.add_argument("--num-process", type=int, default=None, help="default: the recipe's")
    parser.add_argument(
        "--report", action="store_true", help="print the table of what the arms hold, train nothing"
    )
    args = parser.parse_args()

    from worldmodels.control import train_controller
    from worldmodels.control.evaluation import compared

    recorded = json.loads(layout.control_run_file(args.recipe_home).read_text())
    if args.from_generation is None:
        if recorded.get("earlier_phases"):
            raise SystemExit("error: the recipe's controller changed phase; compare its first one")
        first, command = 0, recorded["command"]
    else:
        first, command = args.from_generation + 1, forked_command(recorded, args.from_generation)
    end = first + args.generations
    flags = vars(train_controller.parse_args([]))  # a record may hold settings it has no flag for
    command = {name: value for name, value in command.items() if name in flags and name != "home"}
    if args.num_process:
        command["num_process"] = args.num_process
    results = {
        "baseline": {
            # Its evaluations through its latest generation: an arm's may be compared with
            # the baseline's after as many episodes, later than the arm's last generation.
            **curve(args.recipe_home, first, None),
            "cpu_seconds": None,  # its cost is the recipe's record of its steps:
            "cpu_hours": baseline_cpu_hours(args.recipe_home, first, end),
        }
    }
    # The baseline's generations are validated on a copy of the V and M they trained on, made
    # with the arms': the recipe's own home moves on to the next iteration's.
    homes = {"baseline": args.out / "baseline"}
    copy_world_model(args.recipe_home, homes["baseline"])
    check_world_model(args.recipe_home, first, homes["baseline"])
    for arm in args.arms:
        changes = arm_changes(arm)
        home = homes[arm] = args.out / arm
        copy_world_model(homes["baseline"], home)
        if first:
            copy_fork(args.recipe_home, home, first - 1)
        if not args.report:
            arm_flags = command_flags(command, end, home, changes)
            print(f"== {arm}: train_controller {' '.join(arm_flags)}", flush=True)
            subprocess.run(
                [sys.executable, "-m", "worldmodels.control.train_controller", *arm_flags],
                check=True,
            )
        arm_curve = curve(home, first, end)
        measured = [seconds for seconds in arm_curve["cpu_seconds"] if seconds is not None]
        hours = sum(measured) / 3600 if measured else None
        results[arm] = {**arm_curve, "cpu_hours": hours, **changes}

    validations = {}  # arm -> {generation: report}
    if args.validate:
        copy_generations(args.recipe_home, homes["baseline"], args.validate)
        for name, home in homes.items():
            validations[name] = {
                generation: validate(home, generation, args.validation_episodes, command)
                for generation in args.validate
                if (layout.generation(home, generation) / "complete").exists()
                and (not args.report or layout.evaluation_file(home, generation, seed=1).exists())
            }
            results[name]["validation"] = {g: r["rewards"] for g, r in validations[name].items()}

    atomic_write_text(args.out / "ab.json", json.dumps(results, indent=2) + "\n")
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
        steps = result["steps"][: args.generations]  # against the baseline's, same generations
        share = sum(steps) / sum(baseline_steps[: len(steps)])
        cpu = result.get("cpu_seconds")  # the arms': generations recorded before it have none
        counted = sum(seconds is not None for seconds in cpu) if cpu else len(steps)
        measured = f"{counted} of {len(steps)}" if counted < len(steps) else f"{len(steps)}"
        print(f"{arm:<10}{cells}  {sum(steps):>9}  {share:>10.0%}  {hours}  ({measured} gens)")
    if validations:
        print(f"\nthe mean on {args.validation_episodes} validation tracks (evaluate --seed 1):")
    for name, reports in validations.items():
        for generation, report in reports.items():
            print(f"{name:<12} generation {generation}: {report['mean']:.1f} ± {report['std']:.1f}")
            if name == "baseline":
                continue
            for other, baseline in validations["baseline"].items():
                print(f"    {compared(report, f'the baseline at {other}', baseline)}")


if __name__ == "__main__":
    main()
