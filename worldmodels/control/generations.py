"""Controller training's files: one folder per generation, complete only with its marker.

    control/generations/generation_N/
        population.npy   popsize x P, the candidates CMA-ES asked for (P = 867 for the paper's
                         controller; see control/run.json for what a run's controller reads)
        rewards.npy      popsize x episodes, total reward of every episode
        fitness.npy      popsize, mean reward per candidate (what CMA-ES was told)
        best.npy         P, the candidate with the highest fitness
        mean.npy         P, the distribution mean after the update (pycma's xfavorite)
        optimizer.pkl    the pickled CMA-ES state after the update (kept for the latest ones)
        summary.json     fitness statistics, sigma, timing, seeds and their scheme, any
                         evaluation, the fingerprint of the V (and M) it was trained on and
                         the z its controllers read ("latent": sample or mode)
        complete         written last: a folder without it is ignored and redone

A generation is written to a hidden temporary folder and renamed into place.
"""

from __future__ import annotations

import json
import os
import pickle
import shutil
from pathlib import Path
from typing import NamedTuple

import numpy as np

from worldmodels import layout
from worldmodels.control.controller import ControllerSpec
from worldmodels.records import read_run

MARKER = "complete"
ARRAYS = ("population", "rewards", "fitness", "best", "mean")


def complete_generations(home: Path) -> list[int]:
    """Numbers of the generations whose folder has its completion marker, ascending."""
    directory = layout.generations(home)
    numbers = []
    for path in directory.glob("generation_*") if directory.exists() else []:
        suffix = path.name.removeprefix("generation_")
        if suffix.isdigit() and (path / MARKER).exists():
            numbers.append(int(suffix))
    return sorted(numbers)


def save_generation(home: Path, number: int, arrays: dict, optimizer, summary: dict) -> Path:
    """Writes generation `number` atomically: temporary folder, marker last, then rename."""
    final = layout.generation(home, number)
    temporary = final.with_name(f".{final.name}.{os.getpid()}.tmp")
    shutil.rmtree(temporary, ignore_errors=True)
    temporary.mkdir(parents=True)
    for name in ARRAYS:
        np.save(temporary / f"{name}.npy", np.asarray(arrays[name]))
    with open(temporary / "optimizer.pkl", "wb") as file:
        pickle.dump(optimizer, file)
    (temporary / "summary.json").write_text(json.dumps(summary, indent=2))
    for path in temporary.iterdir():
        with open(path, "rb") as file:
            os.fsync(file.fileno())
    (temporary / MARKER).write_text("")
    if final.exists():  # an earlier attempt's folder without a marker
        shutil.rmtree(final)
    os.replace(temporary, final)
    return final


def load_optimizer(home: Path, number: int):
    with open(layout.generation(home, number) / "optimizer.pkl", "rb") as file:
        return pickle.load(file)


def load_summary(home: Path, number: int) -> dict:
    """Generation `number`'s summary.json, every field present: a summary written before its
    controllers' `latent` was recorded (the shipped agent's first 238 generations) gets
    "sample", how they read z. The one place an older summary is read as a current one."""
    summary = json.loads((layout.generation(home, number) / "summary.json").read_text())
    summary.setdefault("latent", "sample")
    return summary


def load_summaries(home: Path, until: int | None = None) -> list[dict]:
    """The summaries of the complete generations in order, through generation `until` when
    given (a shipped agent's hours and plots end with it)."""
    return [
        load_summary(home, n) for n in complete_generations(home) if until is None or n <= until
    ]


def ranked_by_evaluation(summaries: list[dict]) -> list[int]:
    """The evaluated generations of `summaries`, worst mid-training evaluation first (the
    later generation ranks higher on a tie)."""
    evaluated = [s for s in summaries if "evaluation" in s]
    ranked = sorted(evaluated, key=lambda s: (s["evaluation"]["mean"], s["generation"]))
    return [s["generation"] for s in ranked]


def best_evaluated(summaries: list[dict]) -> int | None:
    """The generation whose mean scored best in its mid-training evaluation, among
    `summaries`; None when none was evaluated."""
    ranked = ranked_by_evaluation(summaries)
    return ranked[-1] if ranked else None


def ship_candidates(summaries: list[dict], count: int) -> list[int]:
    """The `count` generations of `summaries` whose mid-training evaluations scored best,
    ascending."""
    return sorted(ranked_by_evaluation(summaries)[-count:])


def prune_optimizer_states(home: Path, keep: int) -> None:
    """Deletes optimizer.pkl of all but the latest `keep` complete generations (0: keep all).

    The full-covariance state is ~12 MB at N = 867; everything else is kept.
    """
    if keep <= 0:
        return
    for number in complete_generations(home)[:-keep]:
        (layout.generation(home, number) / "optimizer.pkl").unlink(missing_ok=True)


def trained_on(home: Path, number: int, world_model: str | None) -> bool:
    """Whether generation `number` was trained on the V and M with fingerprint `world_model`
    (see `agent.world_model_id`); generations that recorded none are taken to be."""
    recorded = load_summary(home, number).get("world_model")
    return world_model is None or recorded is None or recorded == world_model


def resolve_generation(home: Path, which: str, world_model: str | None = None) -> int:
    """A generation number from "N", "max" (the latest) or "best" (the highest evaluation of
    the mean; the latest when none was evaluated). With a `world_model` fingerprint, "best"
    chooses among the generations trained on those V and M only. Raises ValueError saying
    what exists."""
    numbers = complete_generations(home)
    if not numbers:
        raise ValueError(
            f"no complete generation in {layout.generations(home)}; train a controller first: "
            "python -m worldmodels.control.train_controller"
        )
    if which == "max":
        return numbers[-1]
    if which == "best":
        candidates = [n for n in numbers if trained_on(home, n, world_model)]
        if not candidates:
            raise ValueError(
                f"no generation in {layout.generations(home)} was trained on the home's "
                "latest VAE and MDN-RNN checkpoints; train the controller on them first: "
                "python -m worldmodels.control.train_controller"
            )
        evaluated = {n: load_summary(home, n).get("evaluation") for n in candidates}
        scored = {n: e["mean"] for n, e in evaluated.items() if e}
        return max(scored, key=scored.get) if scored else candidates[-1]
    if not which.isdigit() or int(which) not in numbers:
        raise ValueError(
            f"--generation {which!r}: expected max, best or one of the complete generations "
            f"{numbers[0]}..{numbers[-1]}"
        )
    return int(which)


def load_controller(home: Path, number: int, candidate: str = "mean") -> np.ndarray:
    """Controller parameters of a generation: its distribution `mean` or `best` candidate."""
    if candidate not in ("mean", "best"):
        raise ValueError(f"candidate must be 'mean' or 'best', got {candidate!r}")
    return np.load(layout.generation(home, number) / f"{candidate}.npy")


def controller_spec(home: Path) -> ControllerSpec:
    """What the home's controllers read and output, from control/run.json (the paper's
    controller when there is no run yet)."""
    recorded = read_run(layout.control(home))
    if not recorded:
        return ControllerSpec("zh", 3)
    return ControllerSpec(
        recorded["settings"]["controller_inputs"], recorded["settings"]["actions"]
    )


def controller_latent(home: Path, number: int) -> str:
    """How generation `number`'s controllers read z (`LATENT_READINGS`), as they were trained."""
    return load_summary(home, number)["latent"]


class AgentController(NamedTuple):
    generation: int
    parameters: np.ndarray
    latent: str  # how it reads z, as trained (see `controller_latent`)


def load_agent_controller(
    home: Path, which: str, candidate: str = "mean", models: Path | None = None
) -> AgentController:
    """The controller a command's --generation and --candidate name, to drive with the V and M
    of `models` (a folder that reads as a home; by default `home`).

    Exits with a message saying what to run when there is no trained V, M or controller, or
    when the generation was trained on other V and M than the latest checkpoints of `models`
    (a controller only makes sense with the world model it was trained on).
    """
    from worldmodels.world_model import require_trained_models, world_model_id

    models = home if models is None else models
    uses_memory = controller_spec(home).uses_memory
    require_trained_models(models, uses_memory)
    world_model = world_model_id(models, uses_memory)
    try:
        generation = resolve_generation(home, which, world_model)
    except ValueError as error:
        raise SystemExit(f"error: {error}") from None
    if not trained_on(home, generation, world_model):
        raise SystemExit(
            f"error: generation {generation} was trained on other VAE and MDN-RNN weights than "
            f"the latest checkpoints in {models} (they were retrained since, e.g. for iteration "
            "two); train the controller on them first, or choose --generation best"
        )
    parameters = load_controller(home, generation, candidate)
    return AgentController(generation, parameters, controller_latent(home, generation))
