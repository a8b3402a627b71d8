"""The recipe (`python -m worldmodels.pipeline`): its rules on hand cases, its config, and the
tiny recipe killed mid-iteration and resumed against the numbers an uninterrupted run recorded."""

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from worldmodels import layout, pipeline, recipe_record
from worldmodels.agent_archive import sha256_of
from worldmodels.control.generations import (
    best_evaluated,
    complete_generations,
    load_summary,
    ship_candidates,
)
from worldmodels.data.tf_records import list_episodes
from worldmodels.params import PRESETS, ConfigError, config_from_dict
from worldmodels.recipe_record import RecipeRecord
from worldmodels.seeds import Stream, derive_seed

# The recipe's settings the tiny recipe test overrides (the other pipeline tests cover the
# rest of the preset's keys).
RECIPE_OVERRIDES = {"recipe.agent_episodes": 3}

# What the tiny recipe computed when its numbers were last recorded: a refactor that keeps
# behaviour keeps them. Recorded (after a change meant to alter them, saying why in the commit)
# with `WM_RECORD_NUMBERS=1 pytest tests/test_recipe.py -k killed`.
RECORDED_NUMBERS = Path(__file__).parent / "data" / "tiny-recipe-numbers.json"
REPO = Path(__file__).resolve().parent.parent


def test_a_plateau_is_patience_evaluations_at_or_below_the_best_before_them():
    assert not pipeline.plateaued([100, 200, 300], patience=3)  # too few to judge
    assert not pipeline.plateaued([100, 200, 300, 400], patience=3)
    assert pipeline.plateaued([100, 400, 300, 400, 200], patience=3)
    assert not pipeline.plateaued([100, 400, 300, 401, 200], patience=3)
    # The first agent's first iteration, as recorded: its best at generation 74 (754), then
    # 685, 700, 710 -- the generation 89 at which it was stopped by hand.
    first_agent = [25, 143, 180, 282, 469, 458, 531, 532, 583, 604, 643, 646, 681, 713, 754]
    assert not pipeline.plateaued(first_agent + [685, 700], patience=3)
    assert pipeline.plateaued(first_agent + [685, 700, 710], patience=3)


def summaries(means: dict) -> list[dict]:
    return [
        {"generation": g, **({"evaluation": {"mean": m}} if m is not None else {})}
        for g, m in means.items()
    ]


def test_the_best_evaluated_generation_and_the_ship_candidates():
    history = summaries({0: None, 1: 10.0, 2: None, 3: 30.0, 4: 20.0, 5: 30.0})
    assert best_evaluated(history) == 5  # the later of a tie
    assert best_evaluated(summaries({0: None})) is None
    assert ship_candidates(history, 2) == [3, 5]
    assert ship_candidates(history, 3) == [3, 4, 5]
    assert ship_candidates(history, 10) == [1, 3, 4, 5]


def test_later_iterations_apply_their_changes_in_order():
    config = config_from_dict(
        {
            "recipe": {
                "iterations": 3,
                "changes": {
                    "2": {"controller": {"latent": "mode", "popsize": 8}},
                    "3": {"controller": {"popsize": 4}, "vae": {"epochs": 1}},
                },
            }
        }
    )
    assert config.for_iteration(1) == config
    second, third = config.for_iteration(2), config.for_iteration(3)
    assert (second.controller.latent, second.controller.popsize, second.vae.epochs) == (
        "mode", 8, 10
    )  # fmt: skip
    assert (third.controller.latent, third.controller.popsize, third.vae.epochs) == ("mode", 4, 1)
    # The budget preset reads mu from the first generation (scripts/ab_controller_levers.py).
    assert all(PRESETS["budget"].for_iteration(k).controller.latent == "mode" for k in (1, 2, 3))


@pytest.mark.parametrize(
    "recipe, named",
    [
        ({"changes": {"2": {"vae": {"epochs": 1}}}}, "iteration '2'"),  # the paper: 1 iteration
        ({"iterations": 2, "changes": {"1": {"vae": {"epochs": 1}}}}, "iteration '1'"),
        ({"iterations": 2, "changes": {"2": {"env": {"env": "stock"}}}}, "only the sections"),
        ({"iterations": 2, "changes": {"2": {"vae": {"epoch": 1}}}}, "recipe.changes.2.vae.epoch"),
        ({"iterations": 2, "changes": {"2": {"vae": {"epochs": "1"}}}}, "expects int"),
        ({"iterations": 0}, "recipe.iterations"),
        ({"iterations": 2, "changes": {"2": {"vae": {"seed": 1}}}}, "changes.2.vae.seed"),
    ],
)
def test_bad_recipes_are_errors_naming_the_key(recipe, named):
    with pytest.raises(ConfigError, match=named):
        config_from_dict({"recipe": recipe})


def test_the_run_seeds_every_stage_and_a_stage_seed_of_its_own_is_an_error():
    config = config_from_dict({"sampling": {"seed": 2026}}, base=PRESETS["budget"])
    seeded = pipeline.seeded_by_the_run(config)
    assert [seeded.vae.seed, seeded.memory.seed, seeded.controller.seed] == [2026] * 3
    assert pipeline.seeded_by_the_run(seeded) == seeded  # recorded configs resolve to themselves
    with pytest.raises(ConfigError, match="'memory.seed'.*sampling.seed"):
        pipeline.seeded_by_the_run(config_from_dict({"memory": {"seed": 5}}, base=config))


def test_a_rerun_with_other_settings_is_refused_budgets_aside(tmp_path):
    tiny = PRESETS["tiny"]
    RecipeRecord(tmp_path, tiny, "tiny")
    budgets = config_from_dict(
        {"recipe": {"core_hours": 3.0}, "controller": {"generations": 10}}, base=tiny
    )
    RecipeRecord(tmp_path, budgets, "tiny")  # accepted, and recorded
    assert (
        json.loads(layout.recipe_record(tmp_path).read_text())["config"]["recipe"]["core_hours"]
        == 3.0
    )
    other = config_from_dict({"vae": {"epochs": 3}}, base=budgets)
    with pytest.raises(ConfigError, match=r"vae.epochs: 1 -> 3"):
        RecipeRecord(tmp_path, other, "tiny")
    with pytest.raises(SystemExit, match="records a run with other settings"):
        pipeline.main(["--home", str(tmp_path), "--set", "vae.epochs=3"])


def test_a_report_to_compare_with_is_checked_before_the_run_starts(tmp_path):
    not_a_report = tmp_path / "notes.json"
    not_a_report.write_text("{}")
    with pytest.raises(SystemExit, match=f"--compare-with {not_a_report}: not an evaluation"):
        pipeline.main(["--home", str(tmp_path / "home"), "--compare-with", str(not_a_report)])
    assert not (tmp_path / "home").exists()


def test_the_recipe_needs_evaluations_that_fall_on_its_caps(tmp_path, capsys):
    for flags in (
        ["controller.eval_every=0"],
        ["controller.eval_every=2", "recipe.iteration_generations=3"],
    ):
        with pytest.raises(SystemExit):
            pipeline.main(["--home", str(tmp_path), *[f"--set={flag}" for flag in flags]])
        assert "controller.eval_every" in capsys.readouterr().err


BUSY = "import time\nt = time.process_time()\nwhile time.process_time() - t < {}: pass\n"


def test_a_steps_cpu_seconds_count_the_processes_it_started():
    started = pipeline.cpu_seconds()
    subprocess.run([sys.executable, "-c", BUSY.format(0.5)], check=True)
    assert pipeline.cpu_seconds() - started >= 0.5


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads /proc")
def test_a_steps_cpu_seconds_count_its_running_workers_and_theirs():
    """A child still running (a worker mid-step) counts, with the CPU of a grandchild it
    started and reaped; once it ends and is reaped, its CPU moves to the parent's rusage and
    the total stays."""
    started = pipeline.cpu_seconds()
    child = subprocess.Popen(
        [sys.executable, "-c", "import subprocess, sys, time\n"
         f"subprocess.run([sys.executable, '-c', {BUSY.format(0.3)!r}])\n"
         f"{BUSY.format(0.3)}print('busy', flush=True)\ntime.sleep(600)"],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert child.stdout.readline() == "busy\n"
        running = pipeline.cpu_seconds() - started
        assert running >= 0.6
    finally:
        child.kill()
        child.wait()
    assert pipeline.cpu_seconds() - started == pytest.approx(running, abs=0.05)


def tiny_recipe(home) -> tuple[RecipeRecord, pipeline.Recipe]:
    """A tiny recipe in `home` and its record, to run single steps of."""
    from types import SimpleNamespace

    record = RecipeRecord(home, PRESETS["tiny"], "tiny")
    args = SimpleNamespace(backend="local", num_process=1, ray_address=None)
    return record, pipeline.Recipe(PRESETS["tiny"], home, record, args)


def test_an_interrupted_steps_time_counts_in_the_runs_core_hours(tmp_path):
    record, recipe = tiny_recipe(tmp_path)

    def interrupted_stage():
        started = time.process_time()
        while time.process_time() - started < 0.3:  # CPU time, then Ctrl-C
            pass
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        recipe.step("a step", interrupted_stage, cores=2)
    assert not record.done("a step")
    (entry,) = json.loads(layout.recipe_record(tmp_path).read_text())["interrupted"]
    assert entry["step"] == "a step" and entry["cpu_seconds"] >= 0.3
    assert record.core_hours() == pytest.approx(entry["cpu_seconds"] / 3600)
    recipe.step("a step", lambda: "done", cores=2)  # the rerun finishes it
    assert record.done("a step") and record.core_hours() >= 0.3 / 3600


def test_a_step_done_again_for_missing_episodes_is_kept_apart_from_the_core_hours(tmp_path):
    record, recipe = tiny_recipe(tmp_path)

    def busy_stage(interrupt=False):
        started = time.process_time()
        while time.process_time() - started < 0.2:
            pass
        if interrupt:  # Ctrl-C
            raise KeyboardInterrupt
        return "done"

    recipe.step("a step", busy_stage, cores=2)
    spent = record.core_hours()
    assert spent >= 0.2 / 3600
    recipe.step("a step", busy_stage, cores=2)  # done, nothing missing: not run
    recipe.step("a step", busy_stage, cores=2, missing="1 of 2 episodes")  # done again
    with pytest.raises(KeyboardInterrupt):  # and again, interrupted
        recipe.step("a step", lambda: busy_stage(interrupt=True), cores=2, missing="1")
    redone = json.loads(layout.recipe_record(tmp_path).read_text())["redone"]
    assert [entry["step"] for entry in redone] == ["a step", "a step"]
    assert all(entry["cpu_seconds"] >= 0.2 for entry in redone)
    assert record.core_hours() == spent and "interrupted" not in record.data
    # Killed (kill -9) while done again: kept as redone when the run resumes.
    path = layout.recipe_record(tmp_path)
    killed = {"step": "a step", "seconds": 9.0, "cores": 2, "cpu_seconds": 7.0, "redo": True}
    path.write_text(json.dumps({**json.loads(path.read_text()), "running": killed}))
    resumed = RecipeRecord(tmp_path, PRESETS["tiny"], "tiny")
    assert resumed.data["redone"][-1] == killed and resumed.core_hours() == spent
    assert "redone because their episodes were missing (another machine): 3 tries" in (
        recipe_record.status(tmp_path)
    )


def test_a_killed_steps_time_up_to_its_last_heartbeat_counts(tmp_path, monkeypatch):
    """A running step's wall time reaches recipe.json every HEARTBEAT_SECONDS; a run killed in
    it (no Ctrl-C, no error: its entry stays) counts that time, × its cores, when it resumes."""
    monkeypatch.setattr(recipe_record, "HEARTBEAT_SECONDS", 0.05)
    record, recipe = tiny_recipe(tmp_path)
    path = layout.recipe_record(tmp_path)
    seen = []

    def stage():
        time.sleep(0.5)
        seen.append(json.loads(path.read_text())["running"])
        return "done"

    recipe.step("a step", stage, cores=2, progress=lambda: "half way")
    (running,) = seen
    assert running["step"] == "a step" and running["cores"] == 2
    assert running["cpu_seconds"] is not None  # what it counts: the test above
    assert running["progress"] == "half way"
    finished = json.loads(path.read_text())
    assert "running" not in finished and finished["steps"]["a step"]["seconds"] >= 0.5
    assert 0 < running["seconds"] <= finished["steps"]["a step"]["seconds"]  # a beat came

    finished["running"] = {**running, "step": "a killed step"}  # as kill -9 leaves it
    path.write_text(json.dumps(finished))
    assert "in progress: a killed step, 0 min at its last heartbeat (half way)" in (
        recipe_record.status(tmp_path)
    )
    resumed = RecipeRecord(tmp_path, PRESETS["tiny"], "tiny")
    (killed,) = json.loads(path.read_text())["interrupted"]
    assert killed == {**running, "step": "a killed step"}
    finished_step = finished["steps"]["a step"]
    assert resumed.core_hours() * 3600 == pytest.approx(
        finished_step["cpu_seconds"] + running["cpu_seconds"]
    )
    # Where CPU time is not measured (Ray's workers): wall time x cores.
    path.write_text(json.dumps({**finished, "running": {**running, "cpu_seconds": None}}))
    resumed = RecipeRecord(tmp_path, PRESETS["tiny"], "tiny")
    assert resumed.core_hours() * 3600 == pytest.approx(
        finished_step["cpu_seconds"] + 2 * running["seconds"]
    )


def test_the_progress_of_a_training_step_is_its_last_logged_epoch_and_step(tmp_path):
    losses = tmp_path / "losses.csv"
    assert pipeline.training_progress(tmp_path, 4) == ""  # not started
    losses.write_text("")
    assert pipeline.training_progress(tmp_path, 4) == ""
    losses.write_text("step,epoch,loss\n")
    assert pipeline.training_progress(tmp_path, 4) == ""
    losses.write_text(
        "step,epoch,loss\n" + "".join(f"{s},{s // 300 + 1},0.5\n" for s in range(1, 700))
    )
    # From the second epoch on, the total: 4 epochs as long as the first (299 steps).
    assert pipeline.training_progress(tmp_path, 4) == "epoch 3 of 4, step 699 of ~1196"
    losses.write_text("step,epoch,loss\n1,1,0.5\n2,1,0.5\n")
    assert pipeline.training_progress(tmp_path, 4) == "epoch 1 of 4, step 2"
    losses.write_text(
        "step,epoch,loss\n" + "".join(f"{s},{s // 300 + 1},0.5\n" for s in range(1, 700))
    )
    with open(losses, "a") as file:
        file.write("70")  # a row being written
    assert pipeline.training_progress(tmp_path, 4) == ""


def recipe_command(home):
    flags = [f"--set={key}={json.dumps(value)}" for key, value in RECIPE_OVERRIDES.items()]
    return [sys.executable, "-m", "worldmodels.pipeline", "--preset", "tiny"] + [
        "--home", str(home), "--num-process", "2", *flags
    ]  # fmt: skip


def test_the_tiny_recipe_killed_mid_iteration_ends_as_an_uninterrupted_one(tmp_path):
    """Killed mid-iteration (kill -9) and resumed from a snapshot of it, the recipe ends
    with exactly what an uninterrupted run computed: the episodes, every candidate, reward
    and distribution mean, the decisions and the shipped agent's test rewards, as recorded in
    tests/data/tiny-recipe-numbers.json from an uninterrupted run (WM_RECORD_NUMBERS=1
    records them from this run instead, after a change meant to alter them)."""
    home = tmp_path / "home"
    killed = subprocess.Popen(
        recipe_command(home), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    record = layout.recipe_record(home)
    deadline = time.monotonic() + 600
    # Killed once iteration two has its episodes: in the middle of retraining V and M.
    while time.monotonic() < deadline and killed.poll() is None:
        recorded = json.loads(record.read_text()) if record.exists() else {"steps": {}}
        sampled = any(step.startswith("iteration 2: sample") for step in recorded["steps"])
        if sampled and "running" in recorded:
            break
        time.sleep(0.2)
    assert killed.poll() is None, "the recipe ended before it could be killed"
    os.kill(killed.pid, signal.SIGKILL)
    killed.wait()
    assert not (layout.shipped(home) / "card.md").exists()
    status = recipe_record.status(home).splitlines()
    assert status[1].startswith("iteration 1: generations 0-1, ended by its cap of 2")
    assert status[2].startswith("iteration 2: running; last finished step: iteration 2: ")
    assert status[3].startswith("in progress: iteration 2: ")
    assert status[4].startswith("CMA-ES: generations 0-1 complete; the mean's latest evaluation")
    # And resumed on another machine from a snapshot of the home (scripts/snapshot_run.py):
    # no episodes, V's or M's training whole where it was. Both iterations' episodes are
    # sampled again, the same ones; iteration two's by the generation that sampled them, with
    # the V and M it drove with, which the sampler kept beside them.
    sampled = {path.name: sha256_of(path) for path in list_episodes(agent_episodes(home))}
    snapshot = tmp_path / "snapshot"
    subprocess.run(
        [sys.executable, str(REPO / "scripts" / "snapshot_run.py"), str(home), str(snapshot)],
        check=True, capture_output=True,
    )  # fmt: skip
    assert not list(snapshot.rglob("*.tfrecord"))
    assert layout.sampling_world_model(snapshot, "controller-2").is_dir()
    home = tmp_path / "restored"
    shutil.copytree(snapshot, home)
    # Resumed with an agent to compare with on the validation tracks (0 and 10 on them).
    other_agent = tmp_path / "other-agent.json"
    validation_tracks = [derive_seed(1, Stream.EVALUATION_TRACKS, j) for j in range(2)]
    other_agent.write_text(
        json.dumps(
            {"rewards": [0.0, 10.0], "mean": 5.0, "track_seeds": validation_tracks,
             "env": "fast", "episode_length": 50, "seed": 1}
        )
    )  # fmt: skip
    result = subprocess.run(
        [*recipe_command(home), "--compare-with", str(other_agent)],
        check=True, capture_output=True, text=True,
    )  # fmt: skip
    assert f"against {other_agent} (5.0 on the same 2 tracks): this minus it" in result.stdout
    assert "recipe (tiny) complete: generation" in result.stdout
    assert "sample episodes with policy random (again: 0 of 4 episodes)" in result.stdout
    assert sampled == {path.name: sha256_of(path) for path in list_episodes(agent_episodes(home))}
    assert re.search(
        r"sample episodes with generation \d \(again: 0 of 3 episodes\)", result.stdout
    )
    assert complete_generations(home) == [0, 1, 2, 3]

    # The same numbers as the uninterrupted run that recorded them.
    numbers = recipe_numbers(home)
    if os.environ.get("WM_RECORD_NUMBERS"):
        RECORDED_NUMBERS.write_text(json.dumps(numbers, indent=1) + "\n")
    recorded = json.loads(RECORDED_NUMBERS.read_text())
    assert numbers.keys() == recorded.keys()
    for key, value in recorded.items():
        if isinstance(value, (str, dict)):  # file digests, the recipe's decisions
            assert numbers[key] == value, key
        else:  # tolerant only of float round-off between CPUs of one kind (oneDNN's kernels)
            np.testing.assert_allclose(numbers[key], value, rtol=1e-5, err_msg=key)

    # What the recipe recorded: iteration two sampled with iteration one's best generation,
    # its 3 episodes, V and M retrained on both datasets, the controller reading mu.
    recipe = json.loads(layout.recipe_record(home).read_text())
    first, second = (recipe["iterations"][k] for k in ("1", "2"))
    (killed,) = recipe["interrupted"]  # the try kill -9 ended, its time kept
    # Both datasets sampled again from the snapshot: kept apart, not the recipe's cost.
    assert [span["step"] for span in recipe["redone"]] == [
        "iteration 1: sample episodes with policy random",
        f"iteration 2: sample episodes with generation {first['sampling_generation']}",
    ]
    assert killed["step"].startswith("iteration 2: ") and killed["step"] in recipe["steps"]
    assert first["sampling_generation"] == best_evaluated([load_summary(home, g) for g in (0, 1)])
    assert len(list_episodes(layout.rollouts(home, "controller-2"))) == 3
    sampling = json.loads(layout.sampling_config(home, "controller-2").read_text())
    assert sampling["command"]["generation"] == str(first["sampling_generation"])
    for run in (layout.vae_training(home), layout.memory_training(home)):
        assert layout.trained_datasets(run) == ["random", "controller-2"]
    assert [load_summary(home, g)["latent"] for g in range(4)] == [
        "sample", "sample", "mode", "mode"
    ]  # fmt: skip
    assert second["first_generation"] == 2 and second["ends_run"]
    card = (layout.shipped(home) / "card.md").read_text()
    assert f"generation {recipe['ship']['generation']}" in card
    status = subprocess.run(
        [sys.executable, "-m", "worldmodels.pipeline", "--status", "--home", str(home)],
        check=True, capture_output=True, text=True,
    ).stdout  # fmt: skip
    test = json.loads((layout.shipped(home) / "evaluation.json").read_text())
    assert f"shipped: generation {recipe['ship']['generation']}, {test['mean']:.1f}" in status
    assert "running" not in status and "iteration 2: generations 2-3, ended by" in status
    assert "From `recipe.json`" in card and "| 6. validation of the candidates |" in card
    assert f"- against {other_agent} (5.0 on the same 2 tracks)" in card


def agent_episodes(home) -> Path:
    return layout.rollouts(home, layout.agent_dataset(2))


def recipe_numbers(home) -> dict:
    """What a tiny recipe run computed, from its episodes to its test rewards: digests of the
    files that must be byte-identical, the numbers, and the recipe's decisions."""
    import csv

    def last_losses(run):
        with open(run / "losses.csv") as file:
            row = list(csv.DictReader(file))[-1]
        return [float(value) for key, value in row.items() if "loss" in key]

    numbers = {
        f"{dataset} episode {path.name}": sha256_of(path)
        for dataset in ("random", "controller-2")
        for path in list_episodes(layout.rollouts(home, dataset))
    }
    numbers["vae losses"] = last_losses(layout.vae_training(home))
    numbers["memory losses"] = last_losses(layout.memory_training(home))
    for generation in complete_generations(home):
        folder = layout.generation(home, generation)
        for array in ("population", "mean"):
            numbers[f"generation {generation} {array}"] = sha256_of(folder / f"{array}.npy")
        numbers[f"generation {generation} rewards"] = np.load(folder / "rewards.npy").tolist()
        numbers[f"generation {generation} evaluation"] = load_summary(home, generation)[
            "evaluation"
        ]["rewards"]
    recipe = json.loads(layout.recipe_record(home).read_text())
    for iteration in recipe["iterations"].values():
        iteration.pop("core_hours")
    numbers["iterations"] = recipe["iterations"]
    numbers["ship"] = recipe["ship"]
    numbers["steps"] = {"order": list(recipe["steps"])}
    numbers["test rewards"] = json.loads((layout.shipped(home) / "evaluation.json").read_text())[
        "rewards"
    ]
    return numbers


def test_the_cards_hours_of_a_pipeline_run_sum_its_recorded_steps():
    from worldmodels import shipping

    step = {"cores": 2}
    recipe = {
        "steps": {
            "iteration 1: sample episodes with policy random": {
                **step, "seconds": 3600, "cpu_seconds": 5400
            },
            "iteration 1: train the VAE on random": {**step, "seconds": 1800, "cpu_seconds": None},
            "iteration 1: CMA-ES through generation 4": {
                **step, "seconds": 360, "cpu_seconds": 720
            },
            "iteration 2: sample episodes with generation 4": {
                **step, "seconds": 1800, "cpu_seconds": 1800
            },
            "validate generation 4": {**step, "seconds": 90, "cpu_seconds": 180},
            "test generation 4 and write its card": {**step, "seconds": 90, "cpu_seconds": 180},
        },
        "interrupted": [  # a try of sampling killed at its last heartbeat: wall time x cores
            {"step": "iteration 1: sample episodes with policy random", **step, "seconds": 900,
             "cpu_seconds": None},
        ],
    }  # fmt: skip
    assert shipping.recipe_hours(recipe) == {
        "1. sampling episodes": (1.75, 2.5),
        "2. VAE training": (0.5, 1.0),  # no CPU time recorded: wall time x cores
        "5. controller training": (0.1, 0.2),
        "6. validation of the candidates": (0.025, 0.05),
    }


def test_kill_term_of_a_background_run_stops_it_as_ctrl_c_does(tmp_path):
    # Started as `nohup ... &` starts it: SIGINT ignored.
    def background():
        signal.signal(signal.SIGINT, signal.SIG_IGN)

    run = subprocess.Popen(
        recipe_command(tmp_path),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=background,
    )
    record = layout.recipe_record(tmp_path)
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and run.poll() is None:
        if record.exists() and json.loads(record.read_text())["steps"]:
            break  # the first step is done: stopped in the middle of the second
        time.sleep(0.2)
    time.sleep(1.0)
    run.send_signal(signal.SIGTERM)
    _, stderr = run.communicate(timeout=300)
    assert run.returncode != 0
    assert "rerun the same command" in stderr.splitlines()[-1]
    (entry,) = json.loads(record.read_text())["interrupted"]
    assert entry["seconds"] > 0
