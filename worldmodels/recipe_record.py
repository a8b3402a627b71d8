"""<home>/recipe.json: the pipeline's record of a recipe run, written as the run goes and read
by `pipeline --status`, the card (`shipping`) and the figures.

    preset, command, config   the run's preset and settings, resolved (a rerun with others is
                              refused, budgets aside)
    steps                     every finished step by name: wall seconds, the cores it kept busy,
                              CPU seconds (None where not measured: Ray's workers)
    interrupted               the time of tries that did not finish (Ctrl-C, an error, kill -9)
    redone                    the time of finished steps done again because their episodes
                              were missing (a home restored from a snapshot on another
                              machine); not the recipe's cost, so not in its core-hours
    running                   the step in progress: its wall and CPU seconds and how far it got,
                              at its last heartbeat
    iterations                each ended iteration: why, its generations and evaluations, the
                              generation that samples the next one's data, core-hours so far
    ship                      the candidates' validation means and the generation shipped

Written atomically after every change, so a killed run loses at most a heartbeat's time.
"""

from __future__ import annotations

import contextlib
import json
import re
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from worldmodels import layout
from worldmodels.params import Config, ConfigError

# Settings a rerun may change: the run's budgets. Any other change would mix two runs.
BUDGETS = {("recipe", "core_hours"), ("controller", "generations")}

# How often recipe.json records a running step's time: at most this much of it is lost to a
# kill -9 (the machine's end of a session), against a 2 KB write each time.
HEARTBEAT_SECONDS = 60.0


def differing_settings(recorded: dict, requested: dict) -> list[str]:
    """ "section.key: old -> new" for every setting that differs, budgets aside."""
    return [
        f"{section}.{key}: {value!r} -> {requested[section].get(key)!r}"
        for section, values in recorded.items()
        for key, value in values.items()
        if (section, key) not in BUDGETS and requested.get(section, {}).get(key) != value
    ]


class RecipeRecord:
    """A run's recipe.json, opened by the pipeline to add to it. Opening it refuses other
    settings than the recorded ones (budgets aside) and counts a step a killed run left
    `running` as interrupted."""

    def __init__(self, home: Path, config: Config, preset: str, command: str = ""):
        self.path = layout.recipe_record(home)
        requested = config.to_dict()
        if self.path.exists():
            self.data = json.loads(self.path.read_text())
            changes = differing_settings(self.data["config"], requested)
            if changes:
                raise ConfigError(
                    f"{self.path} records a run with other settings ({'; '.join(changes)}); "
                    "rerun with the same preset and --set flags to resume it, or use another "
                    "--home"
                )
        else:
            self.data = {"preset": preset, "steps": {}, "iterations": {}}
        # A step left running was killed (kill -9, the machine stopped): its time up to its
        # last heartbeat counts as an interrupted try's (a redone step's as redone).
        if "running" in self.data:
            killed = self.data.pop("running")
            self.data.setdefault("redone" if killed.get("redo") else "interrupted", []).append(
                killed
            )
        # The latest command and config: the same settings, but a budget may have changed.
        self.data.update(command=command, config=requested)
        self._lock = threading.Lock()  # the heartbeat's thread saves too
        self.save()

    def save(self) -> None:
        from worldmodels.files import atomic_write_text

        with self._lock:
            atomic_write_text(self.path, json.dumps(self.data, indent=2) + "\n")

    @contextlib.contextmanager
    def running(
        self,
        step: str,
        cores: int,
        cpu_spent: Callable[[], float | None] = lambda: None,
        progress: Callable[[], str] = lambda: "",
        redo: bool = False,
    ) -> Iterator[None]:
        """Within it, recipe.json names `step` as running (`redo`: a finished step done again)
        and, every HEARTBEAT_SECONDS, the wall seconds and the CPU seconds (`cpu_spent()`,
        None where not measured) it has spent, what a kill -9 would otherwise lose of its
        time, and how far it got (`progress()`, for `--status`: "epoch 2 of 4, step 1200")."""
        started, stop = time.monotonic(), threading.Event()
        entry = {"step": step, "seconds": 0.0, "cores": cores, "cpu_seconds": None}
        if redo:
            entry["redo"] = True

        def beat() -> None:
            while not stop.wait(HEARTBEAT_SECONDS):
                entry.update(seconds=time.monotonic() - started, cpu_seconds=cpu_spent())
                try:
                    entry["progress"] = progress()
                except OSError:  # the step's files are being replaced: next beat
                    pass
                self.save()

        self.data["running"] = entry
        self.save()
        heart = threading.Thread(target=beat, daemon=True)
        heart.start()
        try:
            yield
        finally:
            stop.set()
            heart.join()
            del self.data["running"]

    def done(self, step: str) -> bool:
        return step in self.data["steps"]

    def finish(self, step: str, seconds: float, cores: int, cpu_seconds: float | None) -> None:
        self.data["steps"][step] = {"seconds": seconds, "cores": cores, "cpu_seconds": cpu_seconds}
        self.save()

    def interrupted(self, step: str, seconds: float, cpu_seconds: float | None, cores: int) -> None:
        """Keeps the time a step spent before it was interrupted (Ctrl-C, an error; a kill -9:
        `running`), which its rerun does not redo and would not count."""
        self._keep_try("interrupted", step, seconds, cpu_seconds, cores)

    def redone(self, step: str, seconds: float, cpu_seconds: float | None, cores: int) -> None:
        """Keeps, apart from the recipe's cost, the time of a finished step done again (or
        partly: interrupted) because its episodes were missing."""
        self._keep_try("redone", step, seconds, cpu_seconds, cores)

    def _keep_try(self, kind: str, step: str, seconds: float, cpu_seconds, cores: int) -> None:
        entry = {"step": step, "seconds": seconds, "cores": cores, "cpu_seconds": cpu_seconds}
        self.data.setdefault(kind, []).append(entry)
        self.save()

    def core_hours(self) -> float:
        return recorded_core_hours(self.data)

    def iteration(self, number: int) -> dict | None:
        """The record of iteration `number`'s end, None while it runs."""
        return self.data["iterations"].get(str(number))

    def end_iteration(self, number: int, **record) -> None:
        self.data["iterations"][str(number)] = record
        self.save()


def recorded_core_hours(recipe: dict) -> float:
    """Core-hours of every step recipe.json records finished (the controller's chunks included)
    and of the interrupted ones: the CPU time each used, where measured, else its wall time
    times the cores it kept busy."""
    return sum(step_core_seconds(span) for _, span in recipe_spans(recipe)) / 3600


def status(home: Path) -> str:
    """Where the recipe run in `home` stands, from its recipe.json and its generations: the
    core-hours recorded, each iteration's end or the step it last finished, the latest
    evaluation of the mean, and the shipped agent's score once there is one."""
    from worldmodels.control.generations import best_evaluated, load_summaries

    path = layout.recipe_record(home)
    if not path.exists():
        sys.exit(f"error: {path} does not exist: no recipe has run in {home}")
    recipe = json.loads(path.read_text())
    budget = recipe["config"]["recipe"]["core_hours"]
    lines = [
        f"recipe ({recipe['preset']}) in {home}: {recorded_core_hours(recipe):.2f} core-hours "
        + (f"of its budget of {budget:g} " if budget else "")
        + "recorded (a step in progress counts once it ends)"
    ]
    ended = recipe["iterations"]
    for number, end in ended.items():
        lines.append(
            f"iteration {number}: generations {end['first_generation']}-"
            f"{end['last_generation']}, ended by {end['reason']}"
            + ("" if end["ends_run"] else f"; generation {end['sampling_generation']} sampled "
               "the next iteration's episodes")
        )  # fmt: skip
    if not any(end["ends_run"] for end in ended.values()):
        running = len(ended) + 1
        started = [name for name in recipe["steps"] if name.startswith(f"iteration {running}:")]
        lines.append(
            f"iteration {running}: running; "
            + (f"last finished step: {started[-1]}" if started else "no step finished yet")
        )
    if recipe.get("redone"):
        hours = sum(step_core_seconds(span) for span in recipe["redone"]) / 3600
        lines.append(
            f"redone because their episodes were missing (another machine): "
            f"{len(recipe['redone'])} tries, {hours:.2f} core-hours, not counted above"
        )
    if "running" in recipe:  # a run at work, or one killed in this step
        step = recipe["running"]
        lines.append(
            f"in progress: {step['step']}, {step['seconds'] / 60:.0f} min at its last heartbeat"
            + (f" ({step['progress']})" if step.get("progress") else "")
        )
    summaries = load_summaries(home)
    if summaries:
        evaluated = [s for s in summaries if "evaluation" in s]
        line = f"CMA-ES: generations 0-{summaries[-1]['generation']} complete"
        if evaluated:
            by_generation = {s["generation"]: s for s in evaluated}
            latest, best = evaluated[-1], by_generation[best_evaluated(evaluated)]
            line += (
                f"; the mean's latest evaluation {latest['evaluation']['mean']:.1f} ± "
                f"{latest['evaluation']['std']:.1f} on {len(latest['evaluation']['rewards'])} "
                f"tracks at generation {latest['generation']} (best "
                f"{best['evaluation']['mean']:.1f} at {best['generation']})"
            )
        lines.append(line)
    card = layout.shipped(home) / "evaluation.json"
    if "ship" in recipe and card.exists():
        test = json.loads(card.read_text())
        lines.append(
            f"shipped: generation {recipe['ship']['generation']}, {test['mean']:.1f} ± "
            f"{test['std']:.1f} over {len(test['rewards'])} test episodes; card in "
            f"{layout.shipped(home)}"
        )
    return "\n".join(lines)


def recipe_spans(recipe: dict) -> list[tuple[str, dict]]:
    """Every try of every step a recipe.json records, as (step name, its time): the finished
    tries in order, then those interrupted (Ctrl-C, an error, kill -9), whose time counts too."""
    finished = list(recipe["steps"].items())
    return finished + [(span["step"], span) for span in recipe.get("interrupted", [])]


def step_core_seconds(step: dict) -> float:
    """The core-seconds a step of recipe.json (finished or interrupted) used: its CPU seconds,
    where measured, else its wall seconds times the cores it kept busy."""
    cpu = step.get("cpu_seconds")
    return cpu if cpu is not None else step["seconds"] * step["cores"]


def cma_es_step_name(iteration: int, last_generation: int) -> str:
    """recipe.json's name for an iteration's CMA-ES step that trains through `last_generation`."""
    return f"iteration {iteration}: CMA-ES through generation {last_generation}"


def cma_es_step_last_generation(name: str) -> int | None:
    """The last generation a recipe.json step named `name` trains; None for other steps."""
    match = re.fullmatch(r"iteration \d+: CMA-ES through generation (\d+)", name)
    return int(match.group(1)) if match else None
