"""Shipping a trained agent: its archive, test evaluation, figures and card
(`worldmodels.ship`, its command, says what each file holds)."""

from __future__ import annotations

import importlib
import itertools
import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import tensorflow as tf

from worldmodels import __version__, figures, layout
from worldmodels.agent_archive import export_agent
from worldmodels.control import evaluation
from worldmodels.control.evaluation import compared, evaluate_agent
from worldmodels.control.generations import (
    controller_latent,
    load_agent_controller,
    load_summaries,
    load_summary,
)
from worldmodels.control.rendering import render_episode
from worldmodels.params import EnvParams
from worldmodels.recipe_record import recipe_spans, step_core_seconds
from worldmodels.records import load_report
from worldmodels.seeds import SEED_SCHEME, TEST_TRACKS_SEED

PAUSE_SECONDS = 600  # files written further apart than this: the command was stopped between


# recipe.json's step names, by the stage of the card's hours table each belongs to.
RECIPE_STAGES = (
    ("sample episodes", "1. sampling episodes"),
    ("train the VAE", "2. VAE training"),
    ("encode", "3. latent statistics"),
    ("train the MDN-RNN", "4. MDN-RNN training"),
    ("CMA-ES", "5. controller training"),
    ("validate", "6. validation of the candidates"),
)


def recipe_hours(recipe: dict) -> dict[str, tuple[float, float]]:
    """(wall hours, core-hours) of each stage of a pipeline run, summed over the steps its
    recipe.json records (every iteration's, interrupted tries included); the test and card,
    this step, not yet."""
    hours: dict[str, tuple[float, float]] = {}
    for name, step in recipe_spans(recipe):
        stage = next((label for key, label in RECIPE_STAGES if key in name), None)
        if stage is not None:
            wall, cpu = hours.get(stage, (0.0, 0.0))
            used = step_core_seconds(step) / 3600
            hours[stage] = (wall + step["seconds"] / 3600, cpu + used)
    return dict(sorted(hours.items()))


def training_runs(directory: Path) -> list[Path]:
    """A training stage's runs, oldest first: those --load-model moved aside, then the last
    (none for a stage the agent skipped, as the V-only agent's MDN-RNN). Every run after the
    first was started with --load-model."""
    previous = sorted(
        (directory / layout.PREVIOUS_RUNS).glob("run-*"), key=lambda run: int(run.name[4:])
    )
    return [run for run in [*previous, directory] if run.exists()]


def training_hours(run_directory: Path) -> float:
    """Wall-clock hours a training stage (`vae-training/`, `memory-training/`) was writing,
    its runs in `previous-runs/` included: each process (a first run, a resume, a rerun that
    found the stage done) writes its own events file, so the spans of the files, summed."""
    spans = []
    for run in training_runs(run_directory):
        for path in (run / layout.TENSORBOARD).glob("events.out.tfevents.*"):
            # TensorBoard's event records, read as tf.train.summary_iterator (deprecated) did.
            records = tf.data.TFRecordDataset(str(path), buffer_size=2**18)
            times = [tf.compat.v1.Event.FromString(r.numpy()).wall_time for r in records]
            spans.append(max(times) - min(times))
    return sum(spans) / 3600


def files_hours(directories: list[Path]) -> float | None:
    """Wall-clock hours over which the episode files of `directories` were written, each
    folder by one command: the gaps between its consecutive files, leaving out those over
    PAUSE_SECONDS; None without any file or record of one."""
    times = [layout.episode_write_times(directory) for directory in directories]
    gaps = [np.diff(written) for written in times if written]
    if not gaps:
        return None
    return sum(float(g[g <= PAUSE_SECONDS].sum()) for g in gaps) / 3600


def command_line(module_name: str, recorded: dict, load_model: bool = False) -> str:
    """`python -m module_name` with the flags of `recorded` (the command's parsed arguments, as
    its run wrote them) that differ from the command's defaults; --home left out, since the
    card travels without the home."""
    defaults = vars(importlib.import_module(module_name).parse_args([]))
    words = [f"python -m {module_name}"]
    for name, value in {**recorded, "load_model": load_model}.items():
        if name == "home" or name not in defaults or flag_text(value) == flag_text(defaults[name]):
            continue
        flag = "--" + name.replace("_", "-")
        words.append(flag if value is True else f"{flag} {flag_text(value)}")
    return " ".join(words)


def flag_text(value) -> str:
    """A flag's value as written on the command line: a list (several values) as its words."""
    return " ".join(map(str, value)) if isinstance(value, list) else str(value)


def recorded_commands(home: Path, generation: int) -> list[str]:
    """The commands that trained the agent of `generation` in `home`, as its files recorded
    them: for each iteration the sampling, the VAE, the latent statistics and the MDN-RNN, then
    the controller (one CMA-ES run, continued across iterations, one command per phase), its
    last command with the --generations that ends with `generation`."""
    datasets = layout.datasets(home)
    vae_runs = training_runs(layout.vae_training(home))
    memory_runs = training_runs(layout.memory_training(home))
    iterations = itertools.zip_longest(datasets, vae_runs, memory_runs)
    commands, encoded = [], set()
    for iteration, (dataset, vae_run, memory_run) in enumerate(iterations):
        if dataset is not None:
            sampling = json.loads(layout.sampling_config(home, dataset).read_text())
            sampled = sampling["command"]
            if "sampled_generation" in sampling:  # by number: "best" names another one by now
                sampled = {**sampled, "generation": sampling["sampled_generation"]}
            commands.append(command_line("worldmodels.data.sample_policy", sampled))
        if vae_run is not None:
            vae = layout.recorded_run(vae_run)["config"]["command"]
            commands.append(command_line("worldmodels.vision.train_vae", vae, iteration > 0))
        if memory_run is not None:
            # The statistics M trained on, encoded by the VAE trained just before; its other
            # flags (batch size, on-corrupt) do not change what it writes.
            for name in layout.trained_datasets(memory_run):
                overwrite = " --overwrite" if name in encoded else ""  # an earlier VAE's
                commands.append(
                    f"python -m worldmodels.data.sample_latent_stats --dataset {name}{overwrite}"
                )
                encoded.add(name)
            memory = layout.recorded_run(memory_run)["config"]["command"]
            commands.append(command_line("worldmodels.memory.train_memory", memory, iteration > 0))
    control = json.loads(layout.control_run_file(home).read_text())
    # A phase ran until the generation where a resume changed its popsize, episodes per
    # candidate or latent.
    last = {"until_generation": generation + 1, "command": control["command"]}
    for phase in [*control.get("earlier_phases", []), last]:
        until = min(phase["until_generation"], generation + 1)
        command = {**phase["command"], "generations": until}
        commands.append(command_line("worldmodels.control.train_controller", command))
        if until == generation + 1:
            break
    return commands


def existing_test_evaluation(
    home: Path, generation: int, episodes: int, episode_length: int = EnvParams().episode_length
) -> bool:
    """Whether `evaluate` already wrote the report the card needs: the generation's mean on the
    first `episodes` test tracks of stock CarRacing-v3 (evaluate's default track seed) of
    `episode_length` steps, with this seed scheme. Evaluation is deterministic: running it
    again would repeat the same rewards (~15 min of 2 cores for 100 episodes)."""
    path = layout.evaluation_file(home, generation)
    if not path.exists():
        return False
    report = load_report(path)
    expected = {
        "env": "stock",
        "seed": TEST_TRACKS_SEED,
        "episode_length": episode_length,
        "seed_scheme": SEED_SCHEME,
    }
    return (
        len(report["rewards"]) == episodes
        and all(report.get(key) == value for key, value in expected.items())
        and report["latent"] == controller_latent(home, generation)
    )


def validation_reports(home: Path, generation: int) -> list[dict]:
    """`evaluate`'s reports on tracks other than the test tracks (seed ≠ 0) of the mean of
    generations trained on the same V and M as `generation`, by seed then generation: the
    evidence a generation was chosen on."""
    world_model = load_summary(home, generation).get("world_model")
    reports = []
    for path in layout.evaluations(home).glob("generation_*-mean-seed*.json"):
        report = load_report(path)
        if load_summary(home, report["generation"]).get("world_model") == world_model:
            reports.append(report)
    return sorted(reports, key=lambda report: (report["seed"], report["generation"]))


def on_tracks_of(other: dict, reports: list[dict]) -> dict | None:
    """The first of `reports`, `other` aside, that ran `other`'s tracks (to compare the two
    track by track); None when none did."""
    paired = (r for r in reports if r is not other and evaluation.paired_difference(r, other))
    return next(paired, None)


def shipped_minus(report: dict, validations: list[dict], generation: int) -> str:
    """The shipped generation's validation minus `report`, paired on their common tracks
    ("" when no validation of `generation` ran `report`'s tracks)."""
    shipped = on_tracks_of(report, [r for r in validations if r["generation"] == generation])
    if shipped is None:
        return ""
    mean, error = evaluation.paired_difference(shipped, report)
    return f"{mean:+.1f} ± {error:.1f}"


def ship_agent(
    home: Path,
    out: str | Path,
    generation: str = "best",
    *,
    episodes: int = 100,
    num_process: int = 2,
    episode_length: int = EnvParams.episode_length,
    gif_steps: int = 240,
    cores: int = 1,
    note: str = "",
    compare_with: dict[str, dict] | None = None,
) -> str:
    """Writes into `out` the archive of the home's `generation` (N, or best), its test
    evaluation on `episodes` tracks of stock CarRacing-v3, a GIF of `gif_steps` steps, its
    figures and its card (`worldmodels.ship` says what each holds; stages 1-4 ran on `cores`
    cores), the card comparing it with the evaluation reports of `compare_with` (name ->
    report: another agent's, say the one shipped before) track by track. Returns the summary
    lines."""
    out = Path(out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    chosen = generation

    # As `evaluate --generation`: "best" among the generations trained on the home's V and M,
    # and a generation trained on V and M replaced since is refused.
    generation = load_agent_controller(home, generation).generation
    # The hours it took to train this agent: later generations of the run do not count.
    summaries = load_summaries(home, until=generation)
    validations = validation_reports(home, generation)
    checksum = export_agent(home, generation, out / "agent.tar.gz")

    if existing_test_evaluation(home, generation, episodes, episode_length):
        print(f"using the evaluation already in {layout.evaluation_file(home, generation)}")
    else:
        test = EnvParams(env="stock", episode_length=episode_length)
        print(
            evaluate_agent(
                home, str(generation), episodes=episodes, env_params=test, num_process=num_process
            )
        )
    for suffix in (".json", ".png"):
        shutil.copyfile(
            layout.evaluation_file(home, generation, suffix=suffix), out / f"evaluation{suffix}"
        )
    evaluation = json.loads((out / "evaluation.json").read_text())
    gif = EnvParams(env="stock", episode_length=gif_steps)
    print(render_episode(home, str(out / "agent.gif"), str(generation), env_params=gif, scale=2))
    figures.plot_learning_curve(home, out / "learning-curve.png", until=generation)
    figures.plot_fitness(home, out / "fitness.png", until=generation)

    recipe_path = layout.recipe_record(home)
    recipe = json.loads(recipe_path.read_text()) if recipe_path.exists() else None
    datasets = layout.datasets(home)
    wall_hours = {
        "1. sampling episodes": files_hours([layout.rollouts(home, d) for d in datasets]),
        "2. VAE training": training_hours(layout.vae_training(home)),
        "3. latent statistics": files_hours([layout.latent_stats(home, d) for d in datasets]),
        "4. MDN-RNN training": training_hours(layout.memory_training(home)),
    }
    unrecorded = [stage for stage, wall in wall_hours.items() if wall is None]
    hours = {stage: (wall, wall * cores) for stage, wall in wall_hours.items() if wall is not None}
    hours[f"5. controller training, {len(summaries)} generations"] = (
        sum(s["seconds"] for s in summaries) / 3600,
        float(figures.core_hours(home, summaries)[-1]),
    )
    if recipe:  # a pipeline run measured every step as it went
        hours, unrecorded = recipe_hours(recipe), []
    rewards = np.array(evaluation["rewards"])
    # Each agent of `compare_with` against this generation's report on its tracks (the test
    # evaluation when none ran them: the comparison then says it is not paired).
    own_reports = [r for r in validations if r["generation"] == generation] + [evaluation]
    comparisons = [
        compared(on_tracks_of(other, own_reports) or evaluation, name, other)
        for name, other in (compare_with or {}).items()
    ]
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True
    ).stdout.strip()
    card = [
        "# The shipped agent",
        "",
        f"**{rewards.mean():.0f} ± {rewards.std():.0f}** (mean ± std) over {len(rewards)} "
        "episodes of stock `CarRacing-v3`, on tracks training never used "
        f"(`evaluation.json`: every episode's reward and track seed); the distribution mean of "
        f"CMA-ES generation {generation}, "
        + (
            "the one whose mean scored best in the evaluations during training. "
            if chosen == "best"
            else "chosen on the validation tracks below. "
            if validations
            else f"chosen with `--generation {generation}`. "
        )
        + f"{sum(evaluation['lap_finished'])} of the {len(rewards)} episodes finished their lap "
        f"within {evaluation['episode_length']} steps (900 or more needs a finished lap)."
        + (
            " Its controller reads the most likely z of each frame (mu), not a draw from q(z|x) "
            "as the paper's: it was trained so (`train_controller --latent mode`, the last "
            "phase of the commands below), and `evaluate` and `render` drive it so."
            if evaluation.get("latent") == "mode"
            else ""
        ),
        "",
        *(
            [
                "Validation: the mean of generations trained on these V and M, on unseen tracks "
                "other than the test tracks above (`evaluate --seed S`):",
                "",
                f"| generation | tracks | mean ± std | laps finished | generation {generation} "
                "minus it, same tracks (± s.e.) |",
                "|---|---|---|---|---|",
                *[
                    f"| {r['generation']} | {len(r['rewards'])} (seed {r['seed']}, "
                    f"{r['env']} env) | {r['mean']:.1f} ± {r['std']:.1f} | "
                    f"{sum(r['lap_finished'])} | {shipped_minus(r, validations, generation)} |"
                    for r in validations
                ],
                "",
            ]
            if validations
            else []
        ),
        *(
            [
                "Against other agents, on their tracks (the rule to replace one: better by more "
                "than two paired standard errors):",
                "",
                *[f"- {line}" for line in comparisons],
                "",
            ]
            if comparisons
            else []
        ),  # fmt: skip
        "![one episode](agent.gif)",
        "",
        "| stage | wall hours | core-hours |",
        "|---|---|---|",
        *[f"| {stage} | {wall:.2f} | {cores:.2f} |" for stage, (wall, cores) in hours.items()],
        f"| all | {sum(w for w, _ in hours.values()):.2f} | "
        f"{sum(c for _, c in hours.values()):.2f} |",
        "",
        (
            "From `recipe.json`: core-hours are the CPU time each step used, its worker "
            "processes' included (the controller's with its evaluations during training); a "
            "step's time before an interruption is not counted."
            if recipe
            else f"Stages 1-4 on {cores} cores; the controller's core-hours are wall hours "
            "× its rollout workers, evaluations during training left out. Time between an "
            "interrupted command and its resume is not counted."
        )
        + (
            f" Not in this home (no episode files or their times): {', '.join(unrecorded)}."
            if unrecorded
            else ""
        ),
        "",
        *([note, ""] if note else []),
        "![learning curve](learning-curve.png) ![evaluation](evaluation.png)",
        "",
        "![fitness of every generation](fitness.png)",
        "",
        f"Archive: `agent.tar.gz`, sha256 `{checksum}`. Made by worldmodels {__version__} at "
        f"commit {commit}. "
        + (
            f"Trained and shipped by one command, `{recipe['command']}` (its record: "
            "`recipe.json` in the home); the stage commands it ran, in order, with their flags:"
            if recipe
            else "The commands that trained it, in order, with the flags they were given (each "
            "on the same `--home`; a rerun to resume is the same command):"
        ),
        "",
        "```bash",
        *recorded_commands(home, generation),
        "```",
        "",
        "The score, reproduced in a fresh home from the archive (the same tracks, the same "
        "rewards):",
        "",
        "```bash",
        "bash pretrained.sh --home /tmp/agent",
        "python -m worldmodels.control.evaluate --home /tmp/agent --generation best "
        f"--episodes {episodes} --env stock",
        "```",
    ]
    (out / "card.md").write_text("\n".join(card) + "\n")
    return "\n".join(
        [*comparisons, f"shipped generation {generation}: {rewards.mean():.1f} ± "
         f"{rewards.std():.1f}; in {out}"]
    )  # fmt: skip
