"""Stage 5, controller sampling, evaluation and the whole pipeline, end to end and tiny."""

import csv
import json
import os
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
from conftest import holding
from PIL import Image
from test_recipe import RECIPE_OVERRIDES

from worldmodels import layout, pipeline
from worldmodels.control import evaluate, evaluation, render, train_controller
from worldmodels.control.generations import (
    complete_generations,
    load_agent_controller,
    load_optimizer,
    load_summary,
)
from worldmodels.data import sample_policy
from worldmodels.data.tf_records import list_episodes, load_episode, write_record_file
from worldmodels.records import RUN_SCHEMA


def controller_command(home, generations):
    return [
        sys.executable,
        "-m",
        "worldmodels.control.train_controller",
        "--home",
        str(home),
        "--generations",
        str(generations),
        "--popsize",
        "4",
        "--episodes-per-candidate",
        "1",
        "--episode-length",
        "100",
        "--num-process",
        "2",
        "--envs-per-worker",
        "2",
        "--eval-every",
        "0",
    ]


@pytest.fixture
def home(agent_home, tmp_path):
    copy = tmp_path / "home"
    shutil.copytree(agent_home, copy)
    return copy


def test_killed_training_resumes_at_the_interrupted_generation_with_the_saved_optimizer(home):
    interrupted = subprocess.Popen(
        controller_command(home, 3), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    deadline = time.time() + 300
    while time.time() < deadline and complete_generations(home) != [0, 1]:
        time.sleep(0.02)
    interrupted.send_signal(signal.SIGKILL)
    assert interrupted.wait() == -signal.SIGKILL
    assert complete_generations(home) == [0, 1], "killed too late: generation 2 was already done"

    resumed = subprocess.run(controller_command(home, 3), capture_output=True, text=True)
    assert resumed.returncode == 0, resumed.stderr
    assert "resuming after generation 1" in resumed.stdout
    assert "generation 2: best" in resumed.stdout and "generation 0:" not in resumed.stdout
    assert complete_generations(home) == [0, 1, 2]

    # Generation 2 asked CMA-ES exactly what the optimizer saved by generation 1 asks.
    expected = np.asarray(load_optimizer(home, 1).ask())
    np.testing.assert_array_equal(np.load(layout.generation(home, 2) / "population.npy"), expected)
    for number in (0, 1, 2):
        folder = layout.generation(home, number)
        rewards, fitness = np.load(folder / "rewards.npy"), np.load(folder / "fitness.npy")
        assert rewards.shape == (4, 1)
        np.testing.assert_allclose(fitness, rewards.mean(axis=1))
        np.testing.assert_array_equal(
            np.load(folder / "best.npy"), np.load(folder / "population.npy")[fitness.argmax()]
        )
        assert np.load(folder / "mean.npy").shape == (867,)
        summary = load_summary(home, number)
        assert summary["best_fitness"] == pytest.approx(fitness.max())
        assert summary["episodes"] == 4 and summary["episodes_per_second"] > 0

    rerun = subprocess.run(controller_command(home, 3), capture_output=True, text=True)
    assert "already has 3 generations" in rerun.stdout  # nothing left to do, nothing redone
    changed = subprocess.run(
        controller_command(home, 3) + ["--sigma0", "0.5"], capture_output=True, text=True
    )
    assert changed.returncode != 0 and "sigma0: 0.1 -> 0.5" in changed.stderr


def test_a_cma_es_run_another_process_writes_is_refused(home):
    holder = holding(home / "control")
    try:
        result = subprocess.run(controller_command(home, 2), capture_output=True, text=True)
    finally:
        holder.kill()
        holder.wait()
    assert result.returncode != 0
    assert f"pid {holder.pid} " in result.stderr and "is writing a CMA-ES run" in result.stderr
    assert not (home / "control" / "run.json").exists()


def test_ctrl_c_ends_training_with_one_line_after_the_last_complete_generation(home):
    # A terminal's Ctrl-C signals the whole process group, the workers too. (kill -TERM of a
    # background run takes the same path: cli.stop_like_ctrl_c, tested with the recipe.)
    run = subprocess.Popen(
        controller_command(home, 50), stderr=subprocess.PIPE, text=True, start_new_session=True
    )
    deadline = time.time() + 300
    while time.time() < deadline and not complete_generations(home):
        time.sleep(0.02)
    os.killpg(run.pid, signal.SIGINT)
    stderr = run.communicate(timeout=120)[1]
    assert run.returncode == 1
    assert "Traceback" not in stderr and "KeyboardInterrupt" not in stderr
    last_line = stderr.strip().splitlines()[-1]
    assert last_line.startswith("interrupted: every complete generation is in")
    assert complete_generations(home) and len(complete_generations(home)) < 50


def test_cma_es_maximises_reward(home, monkeypatch):
    """With a fitness whose maximum is known, the search must climb towards it every
    generation: it would walk away if CMA-ES, which minimises, were told the rewards instead
    of their negatives."""
    from pool_handlers import TARGET_MEAN_PARAMETER, TargetFitness

    from worldmodels.control import controller_training, train_controller

    monkeypatch.setattr(controller_training, "RolloutWorker", TargetFitness)
    train_controller.main(
        [*controller_command(home, 6)[3:], "--popsize", "8", "--num-process", "1"]
    )
    means = [0.0] + [
        float(np.load(layout.generation(home, n) / "mean.npy").mean()) for n in range(6)
    ]  # x0 = 0, then each generation's distribution mean
    assert all(new > old for old, new in zip(means, means[1:])), means
    assert means[-1] < TARGET_MEAN_PARAMETER
    fitness = [load_summary(home, n)["best_fitness"] for n in range(6)]
    assert fitness[-1] > fitness[0]


def test_evaluate_writes_rewards_and_histogram(trained_controller_home, tmp_path, capsys):
    from worldmodels.seeds import TEST_TRACKS_SEED, Stream, derive_seed

    home = trained_controller_home
    # Another agent's report on the same 3 tracks, scoring -100 on each.
    seeds = [derive_seed(TEST_TRACKS_SEED, Stream.EVALUATION_TRACKS, j) for j in range(3)]
    other = {"mean": -100.0, "rewards": [-100.0] * 3, "track_seeds": seeds, "seed": 0}
    other_path = tmp_path / "other.json"
    other_path.write_text(json.dumps({**other, "env": "fast", "episode_length": 30}))
    evaluate.main(
        ["--home", str(home), "--generation", "best", "--episodes", "3", "--episode-length"]
        + ["30", "--num-process", "2", "--envs-per-worker", "2"]
        + ["--compare-with", str(other_path)]
    )
    best = max((0, 1), key=lambda n: load_summary(home, n)["evaluation"]["mean"])
    report = json.loads(
        (home / "control" / "evaluations" / f"generation_{best}-mean.json").read_text()
    )
    assert len(report["rewards"]) == 3
    # Each reward recomputed alone, in this process, on the track the report names.
    from worldmodels.control.generations import load_controller
    from worldmodels.control.rollouts import EpisodeTask, RolloutEngine
    from worldmodels.data.car_racing import make_env
    from worldmodels.params import EnvParams
    from worldmodels.world_model import WorldModel

    engine = RolloutEngine(WorldModel(home), [make_env(EnvParams(episode_length=30))])
    controller = load_controller(home, best)
    episodes = [
        engine.run([EpisodeTask(j, controller, seed)])[0]
        for j, seed in enumerate(report["track_seeds"])
    ]
    recomputed = [episode.total_reward for episode in episodes]
    np.testing.assert_allclose(report["rewards"], recomputed, rtol=1e-6)
    assert report["steps"] == [episode.steps for episode in episodes]
    assert report["lap_finished"] == [False] * 3  # 30 steps
    assert report["mean"] == pytest.approx(sum(recomputed) / 3)
    assert report["std"] == pytest.approx(float(np.sqrt(np.var(recomputed))))
    assert (home / "control" / "evaluations" / f"generation_{best}-mean.png").stat().st_size > 0
    out = capsys.readouterr().out
    assert "over 3 episodes, 0 finished their lap within 30 steps" in out
    difference = np.mean(recomputed) + 100
    error = np.std(recomputed, ddof=1) / np.sqrt(3)
    assert f"this minus it {difference:+.1f} ± {error:.1f} (paired standard error)" in out


def test_a_comparison_says_whether_it_is_beyond_two_paired_standard_errors(tmp_path):
    tracks = {"track_seeds": [11, 12, 13], "env": "fast", "episode_length": 1000, "seed": 1}
    report = {"mean": 30.0, "rewards": [10.0, 30.0, 50.0], **tracks}
    # Differences 10, 2, 10: mean 7.3, standard error 2.7.
    other = {"mean": 22.7, "rewards": [0.0, 28.0, 40.0], **tracks}
    assert evaluation.compared(report, "A", other) == (
        "against A (22.7 on the same 3 tracks): this minus it +7.3 ± 2.7 (paired standard "
        "error), better by more than two standard errors"
    )
    # Differences 10, -8, 10: mean 4, standard error 6.
    assert "+4.0 ± 6.0 (paired standard error), within two" in evaluation.compared(
        report, "A", {**other, "rewards": [0.0, 38.0, 40.0]}
    )
    assert "worse by more than" in evaluation.compared(other, "B", report)
    assert "not paired, it ran other tracks (its seed 1, env stock" in evaluation.compared(
        report, "C", {**other, "env": "stock"}
    )


@pytest.mark.parametrize(
    ("content", "expected"),
    [(None, "cannot read it"), ("{not json", "cannot read it"), ("{}", "not an evaluation")],
)
def test_a_report_to_compare_with_is_checked_before_evaluating(
    trained_controller_home, tmp_path, content, expected
):
    path = tmp_path / "other.json"
    if content is not None:
        path.write_text(content)
    with pytest.raises(SystemExit, match=f"--compare-with {path}: {expected}"):
        evaluate.main(["--home", str(trained_controller_home), "--compare-with", str(path)])


def test_evaluations_on_other_tracks_keep_their_own_report(
    trained_controller_home, tmp_path, capsys
):
    home = tmp_path / "home"
    shutil.copytree(trained_controller_home, home)
    common = ["--home", str(home), "--generation", "1", "--episodes", "2"]
    common += ["--episode-length", "10", "--num-process", "1", "--envs-per-worker", "2"]
    evaluate.main(common)
    paper_tracks = layout.evaluation_file(home, 1)
    before = paper_tracks.read_bytes()
    evaluate.main([*common, "--seed", "3", "--env", "stock"])
    assert paper_tracks.read_bytes() == before
    other = json.loads(layout.evaluation_file(home, 1, seed=3).read_text())
    assert (other["seed"], other["env"]) == (3, "stock")
    assert set(other["track_seeds"]).isdisjoint(json.loads(before)["track_seeds"])
    assert layout.evaluation_file(home, 1, seed=3, suffix=".png").stat().st_size > 0
    assert "on the same tracks" not in capsys.readouterr().out

    # Generation 0 on generation 1's seed-3 tracks: compared with it, not with the others.
    evaluate.main([*common, "--seed", "3", "--env", "stock", "--generation", "0"])
    zeroth = json.loads(layout.evaluation_file(home, 0, seed=3).read_text())
    mean, error = evaluation.paired_difference(zeroth, other)
    assert f"this minus generation 1 (mean) {mean:+.1f} ± {error:.1f} (" in capsys.readouterr().out


def test_an_evaluation_reading_the_mode_keeps_its_own_report(
    trained_controller_home, tmp_path, capsys
):
    home = tmp_path / "home"
    shutil.copytree(trained_controller_home, home)
    common = ["--home", str(home), "--generation", "1", "--episodes", "2", "--seed", "2"]
    # Long enough for the car to move: the first steps' rewards do not depend on the actions.
    common += ["--episode-length", "60", "--num-process", "1", "--envs-per-worker", "2"]
    evaluate.main(common)
    sampled = json.loads(layout.evaluation_file(home, 1, seed=2).read_text())
    evaluate.main([*common, "--latent", "mode"])
    path = layout.evaluation_file(home, 1, seed=2, latent="mode")
    assert path.name == "generation_1-mean-zmode-seed2.json"
    mode = json.loads(path.read_text())
    assert (sampled["latent"], mode["latent"]) == ("sample", "mode")
    assert mode["track_seeds"] == sampled["track_seeds"]
    assert mode["rewards"] != sampled["rewards"]
    mean, error = evaluation.paired_difference(mode, sampled)
    out = capsys.readouterr().out
    assert f"this minus generation 1 (mean) {mean:+.1f} ± {error:.1f} (" in out
    assert "generation 1 (mean, z mode): " in out


def test_a_run_switched_to_reading_the_mode_is_driven_the_way_each_generation_trained(
    trained_controller_home, tmp_path, capsys
):
    """Resumed with --latent mode, a run records the phase and its new generations' latent;
    evaluate, sample_policy and render then drive each generation reading z as it trained."""
    from worldmodels.control.rollouts import EpisodeTask, RolloutEngine
    from worldmodels.data.car_racing import make_env
    from worldmodels.params import EnvParams
    from worldmodels.world_model import WorldModel

    home = tmp_path / "home"
    shutil.copytree(trained_controller_home, home)
    train_controller.main(
        ["--home", str(home), "--generations", "3", "--popsize", "4", "--episodes-per-candidate"]
        + ["1", "--episode-length", "30", "--num-process", "2", "--envs-per-worker", "2"]
        + ["--eval-every", "1", "--eval-episodes", "2", "--latent", "mode"]
    )
    assert "the controllers read z's mode from generation 2 on" in capsys.readouterr().out
    assert [load_summary(home, n)["latent"] for n in (0, 1, 2)] == ["sample", "sample", "mode"]
    run = layout.recorded_run(layout.control(home))
    assert run["settings"]["latent"] == "mode"
    assert run["earlier_phases"][-1]["until_generation"] == 2
    assert run["earlier_phases"][-1]["command"]["latent"] == "sample"

    def driven(generation, latent, seeds, length):
        env = make_env(EnvParams(episode_length=length))
        engine = RolloutEngine(WorldModel(home), [env], latent)
        controller = load_agent_controller(home, str(generation)).parameters
        return [
            engine.run([EpisodeTask(j, controller, seed, keep_record=True)])[0]
            for j, seed in enumerate(seeds)
        ]

    common = ["--home", str(home), "--episodes", "2", "--seed", "2", "--num-process", "1"]
    common += ["--episode-length", "60", "--envs-per-worker", "2"]
    for generation, latent in ((1, "sample"), (2, "mode")):
        evaluate.main([*common, "--generation", str(generation)])
        report = json.loads(layout.evaluation_file(home, generation, seed=2).read_text())
        assert (report["latent"], report["trained_latent"]) == (latent, latent)
        episodes = driven(generation, latent, report["track_seeds"], 60)
        np.testing.assert_allclose(report["rewards"], [e.total_reward for e in episodes])
    evaluate.main([*common, "--generation", "2", "--latent", "sample"])
    other = layout.evaluation_file(home, 2, seed=2, latent="sample")
    assert other.name == "generation_2-mean-zsample-seed2.json"
    assert "generation 2 (mean, z sample): " in capsys.readouterr().out

    sample_policy.main(
        ["--home", str(home), "--policy", "controller", "--generation", "2", "--episodes", "1"]
        + ["--episode-length", "30", "--num-process", "1"]
    )
    (path,) = list_episodes(home / "controller-rollouts")
    sampled = load_episode(path)
    actions = {}
    for latent in ("mode", "sample"):
        (episode,) = driven(2, latent, [int(sampled["seed"])], 30)
        write_record_file(tmp_path / f"{latent}.tfrecord", episode.record)
        actions[latent] = load_episode(tmp_path / f"{latent}.tfrecord")["action"]
    np.testing.assert_allclose(sampled["action"], actions["mode"], atol=1e-6)
    assert not np.allclose(sampled["action"], actions["sample"], atol=1e-3)

    gif = tmp_path / "mode.gif"
    render.main(
        ["--home", str(home), "--generation", "2", "--seed", "7", "--episode-length", "60"]
        + ["--out", str(gif)]
    )
    (rendered,) = driven(2, "mode", [7], 60)
    assert f"reward {rendered.total_reward:.1f}; wrote" in capsys.readouterr().out


def test_the_mode_is_for_real_frames_not_dreams(agent_home):
    with pytest.raises(SystemExit):
        train_controller.parse_args(["--home", str(agent_home), "--in-dream", "--latent", "mode"])


def test_the_latent_noise_measurement_replays_the_episodes_it_drove(trained_controller_home):
    """The script exits unless its replay of each step gives the recorded action again."""
    from pathlib import Path

    script = Path(__file__).parents[1] / "scripts" / "measure_latent_noise.py"
    done = subprocess.run(
        [sys.executable, str(script), "--home", str(trained_controller_home)]
        + ["--generation", "1", "--episodes", "2", "--episode-length", "30"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "generation 1 (reading z's sample) on 2 validation tracks (60 steps" in done.stdout
    rows = [line for line in done.stdout.splitlines() if line.startswith(("| steer", "| gas"))]
    assert len(rows) == 2 and all(float(row.split("|")[2]) > 0 for row in rows)


def test_reports_on_the_same_tracks_are_compared_track_by_track(tmp_path):
    tracks = {"track_seeds": [11, 12, 13], "env": "fast", "episode_length": 1000}
    report = {"generation": 5, "candidate": "mean", "rewards": [10.0, 30.0, 50.0], **tracks}
    other = {"generation": 4, "candidate": "mean", "rewards": [0.0, 28.0, 40.0], **tracks}
    # Differences 10, 2, 10: mean 22/3, sample sd sqrt(64/3), standard error sd / sqrt(3).
    mean, error = evaluation.paired_difference(report, other)
    assert mean == pytest.approx(22 / 3) and error == pytest.approx(np.sqrt(64 / 3) / np.sqrt(3))
    for changed in ({"track_seeds": [11, 12, 14]}, {"env": "stock"}, {"episode_length": 500}):
        assert evaluation.paired_difference(report, {**other, **changed}) is None

    reports = {
        "generation_5-mean-seed1.json": report,
        "generation_4-mean-seed1.json": other,
        "generation_3-mean-seed1.json": {**other, "generation": 3, "rewards": [20.0, 30.0, 40.0]},
        "generation_4-mean.json": {**other, "track_seeds": [1, 2, 3]},
    }
    for name, content in reports.items():
        (tmp_path / name).write_text(json.dumps(content))
    assert evaluation.same_track_comparisons(report, tmp_path / "generation_5-mean-seed1.json") == [
        "generation 3 (mean) +0.0 ± 5.8",  # differences -10, 0, 10: sd 10
        "generation 4 (mean) +7.3 ± 2.7",
    ]


def test_bad_generation_is_a_clear_error(trained_controller_home):
    with pytest.raises(SystemExit, match="one of the complete generations 0..1"):
        evaluate.main(["--home", str(trained_controller_home), "--generation", "7"])


def test_controller_and_random_agent_sampling_write_episode_records(
    trained_controller_home, tmp_path
):
    home = tmp_path / "home"
    shutil.copytree(trained_controller_home, home)
    for policy in ("controller", "agent-random"):
        sample_policy.main(
            [
                "--home",
                str(home),
                "--policy",
                policy,
                "--generation",
                "max",
                "--episodes",
                "3",
                "--episode-length",
                "25",
                "--num-process",
                "2",
                "--envs-per-worker",
                "2",
            ]
        )
        paths = list_episodes(home / f"{policy}-rollouts")
        assert len(paths) == 3
        episode = load_episode(paths[0])
        assert episode["policy"] == policy and episode["observation"].shape == (25, 64, 64, 3)
        assert episode["action"][:, 1].min() >= 0 and episode["action"][:, 2].min() >= 0


def test_parameter_noise_gives_each_episode_its_own_nearby_controller(
    trained_controller_home, tmp_path
):
    from worldmodels.control.sampling import perturbed
    from worldmodels.seeds import Stream, derive_seed

    mean = np.linspace(-1, 1, 867).astype(np.float32)
    # Episode i's perturbation: N(0, sd^2) per parameter from its own stream of the base seed.
    draw = np.random.default_rng(derive_seed(7, Stream.CONTROLLER_NOISE, 2)).standard_normal(867)
    np.testing.assert_allclose(perturbed(mean, 0.5, 7, 2), mean + 0.5 * draw, rtol=1e-6)
    assert perturbed(mean, 0.0, 7, 2) is mean and perturbed(None, 0.5, 7, 2) is None
    assert not np.allclose(perturbed(mean, 0.5, 7, 2), perturbed(mean, 0.5, 7, 3))

    home = tmp_path / "home"
    shutil.copytree(trained_controller_home, home)
    flags = ["--home", str(home), "--policy", "controller", "--generation", "max", "--episodes"]
    flags += ["2", "--episode-length", "20", "--num-process", "1", "--envs-per-worker", "2"]
    sample_policy.main([*flags, "--dataset", "exact"])
    sample_policy.main([*flags, "--dataset", "noisy", "--parameter-noise", "0.5"])
    exact, noisy = (
        [load_episode(path)["action"] for path in list_episodes(layout.rollouts(home, name))]
        for name in ("exact", "noisy")
    )
    assert all(not np.allclose(a, b) for a, b in zip(exact, noisy))  # same tracks, other drivers
    recorded = json.loads(layout.sampling_config(home, "noisy").read_text())["command"]
    assert recorded["parameter_noise"] == 0.5
    with pytest.raises(SystemExit):
        sample_policy.main([*flags, "--policy", "brownian", "--parameter-noise", "0.5"])


def test_finished_controller_sampling_reruns_after_v_and_m_are_retrained(
    trained_controller_home, tmp_path, capsys
):
    home = tmp_path / "home"
    shutil.copytree(trained_controller_home, home)
    flags = ["--home", str(home), "--policy", "controller", "--generation", "best"]
    flags += ["--episode-length", "20", "--num-process", "1"]
    sample_policy.main([*flags, "--episodes", "2"])
    config = layout.sampling_config(home, "controller")
    best = load_agent_controller(home, "best").generation
    assert json.loads(config.read_text())["sampled_generation"] == best
    for number in complete_generations(home):
        summary_path = layout.generation(home, number) / "summary.json"
        summary = json.loads(summary_path.read_text())
        summary_path.write_text(json.dumps({**summary, "world_model": "retrained V and M"}))

    sample_policy.main([*flags, "--episodes", "2"])
    assert "wrote 0 controller episodes" in capsys.readouterr().out
    assert json.loads(config.read_text())["sampled_generation"] == best  # kept by the rerun
    with pytest.raises(SystemExit, match="no generation .* was trained on the home's latest"):
        sample_policy.main([*flags, "--episodes", "3"])


# One override of every setting of worldmodels/params.py, each with the effect it must have.
PIPELINE_OVERRIDES = {
    "env.env": "stock",
    "env.episode_length": 30,
    "sampling.policy": "brownian",
    "sampling.episodes": 3,
    "sampling.brownian_dt": 0.1,
    "sampling.seed": 5,
    "vae.kl_tolerance": 0.25,
    "vae.learning_rate": 0.0002,
    "vae.batch_size": 16,
    "vae.epochs": 2,
    "vae.validation_share": 0.3,
    # The recipe seeds every stage with sampling.seed: a stage's seed may only repeat it.
    "vae.seed": 5,
    "memory.memory": "attention",
    "memory.attention_window": 4,
    "memory.reward_done_heads": True,
    "memory.reward_overprediction_weight": 2.0,
    "memory.reward_done_ensemble": 2,
    "memory.lstm_units": 16,
    "memory.num_mixtures": 2,
    "memory.learning_rate": 0.002,
    "memory.final_learning_rate": 0.0001,
    "memory.gradient_clip": 0.5,
    "memory.batch_size": 3,
    "memory.epochs": 2,
    "memory.validation_share": 0.3,
    "memory.seed": 5,
    "controller.popsize": 5,
    "controller.seed": 5,
    "controller.episodes_per_candidate": 2,
    "controller.sigma0": 0.2,
    "controller.generations": 2,
    "controller.cma_diagonal": True,
    "controller.eval_every": 2,
    "controller.eval_episodes": 3,
    "controller.envs_per_worker": 3,
    "controller.worker_timeout": 300.0,
    "controller.keep_optimizer_states": 1,
    "controller.evaluation_episodes": 2,
    "controller.stall_steps": 5,
    "controller.in_dream": True,
    "controller.dream_temperature": 1.2,
    "controller.dream_horizon": 20,
    "controller.dream_disagreement_penalty": 0.5,
    # One iteration here (the tiny recipe's two: tests/test_recipe.py), shipped after validating
    # its best generation on 3 tracks of seed 4.
    "recipe.iterations": 1,
    "recipe.changes": {},
    "recipe.patience": 2,
    "recipe.iteration_generations": 2,
    "recipe.core_hours": 100.0,
    "recipe.ship_candidates": 1,
    "recipe.validation_episodes": 3,
    "recipe.validation_seed": 4,
}


# The settings of the discrete VAE and the V-only agent, overridden in `discrete_home`.
DISCRETE_OVERRIDES = {
    "vae.latent": "discrete",
    "vae.epochs": 2,
    "vae.gumbel_temperature_start": 3.0,
    "vae.gumbel_temperature_end": 1.0,
    "vae.gumbel_temperature_half_life": 1.0,
    "vae.kl_weight_start": 1.0,
    "vae.kl_weight_end": 0.5,
    "vae.kl_weight_half_life": 2.0,
    "controller.controller_inputs": "z",
    "controller.actions": 2,
    "controller.latent": "mode",
}


# Settings of a stage's command that a recipe must leave at their default (another value is
# a ConfigError naming the key: test_params).
NOT_IN_A_RECIPE = {"memory.train_heads_only"}


def test_every_setting_is_overridden_by_the_pipeline_tests():
    keys = {
        f"{section}.{key}"
        for section, values in pipeline.PRESETS["tiny"].to_dict().items()
        for key in values
    }
    overridden = set(PIPELINE_OVERRIDES) | set(DISCRETE_OVERRIDES) | set(RECIPE_OVERRIDES)
    assert keys == overridden | NOT_IN_A_RECIPE


def test_tiny_pipeline_runs_all_stages_and_every_setting_reaches_its_stage(tmp_path, capsys):
    from worldmodels.seeds import Stream, derive_seed
    from worldmodels.world_model import build_world_model

    home = tmp_path / "home"
    flags = [f"--set={key}={json.dumps(value)}" for key, value in PIPELINE_OVERRIDES.items()]
    pipeline.main(["--preset", "tiny", "--home", str(home), "--num-process", "2", *flags])
    assert "recipe (tiny) complete: generation 1 shipped" in capsys.readouterr().out
    assert json.loads((home / "pipeline-config.json").read_text())["memory"]["lstm_units"] == 16

    # Stage 1: brownian episodes, 3 of them, 30 steps, seeds from --seed 5, dt 0.1.
    episodes = [load_episode(p) for p in list_episodes(home / "brownian-rollouts")]
    assert [e["seed"] for e in episodes] == [
        derive_seed(5, Stream.EPISODE_TRACKS, i) for i in range(3)
    ]
    assert all(e["policy"] == "brownian" and len(e["action"]) == 30 for e in episodes)
    steps = np.diff(episodes[0]["action"][:, 0])
    inside = np.abs(episodes[0]["action"][:, 0]) < 1  # the clip at the bounds aside
    assert 0.22 < np.std(steps[inside[:-1] & inside[1:]]) < 0.45  # sqrt(0.1), not sqrt(0.02)
    sampling = json.loads((home / "brownian-rollouts" / "sample_policy-config.json").read_text())
    assert sampling["env"]["env"] == "stock" and sampling["command"]["env"] == "stock"

    # Stage 2: the VAE's settings and its epochs: one episode of 3 held out, 60 frames left
    # in batches of 16, 4 steps an epoch.
    vae_run = json.loads((home / "vae-training" / "run.json").read_text())
    assert len(vae_run["validation_episodes"]) == 1
    assert vae_run["settings"]["dataset"] == "brownian"
    assert vae_run["settings"]["kl_tolerance"] == 0.25
    assert vae_run["settings"]["learning_rate"] == 0.0002
    assert vae_run["settings"]["batch_size"] == 16
    assert vae_run["settings"]["seed"] == 5
    vae_losses = (home / "vae-training" / "losses.csv").read_text().splitlines()
    assert len(vae_losses) - 1 == 2 * 4
    assert len((home / "vae-training" / "validation.csv").read_text().splitlines()) - 1 == 2

    # Stages 3 and 4: the MDN-RNN's sizes are in its checkpoint, its schedule in its log.
    assert len(list_episodes(home / "latent-stats" / "brownian")) == 3
    _, memory = build_world_model(home)
    assert memory.kind == "attention" and memory.window == 4
    assert memory.lstm.cell.units == 16 and memory.mdn.units == 32 * 2 * 3
    memory_run = json.loads((home / "memory-training" / "run.json").read_text())["settings"]
    assert memory_run["gradient_clip"] == 0.5 and memory_run["batch_size"] == 3
    assert memory_run["seed"] == 5 and memory_run["reward_overprediction_weight"] == 2.0
    assert memory.reward_done_heads and memory.reward_done.built
    assert memory.reward_done_ensemble == 2 and memory.reward_done.heads == 2
    with open(home / "memory-training" / "losses.csv", newline="") as file:
        memory_losses = list(csv.DictReader(file))
    assert {"nll", "reward_loss", "done_loss"} <= set(memory_losses[0])
    learning_rates = [float(row["learning_rate"]) for row in memory_losses]
    assert len(learning_rates) == 2  # 2 epochs of one batch of the 2 training episodes
    # Linear decay from 0.002 to 0.0001 over the run's 2 steps, logged before each step.
    assert learning_rates == pytest.approx([0.002, 0.002 - (0.002 - 0.0001) / 2])

    # Stage 5: the controller reads z, the 16-wide h and its 16-wide attention context, 5 x 2
    # episodes a generation.
    control = json.loads((home / "control" / "run.json").read_text())
    assert control["command"]["env"] == "stock" and control["command"]["episode_length"] == 30
    assert control["config"]["worker_timeout"] == 300.0
    assert control["config"]["envs_per_worker"] == 3
    assert control["settings"]["sigma0"] == 0.2 and control["settings"]["cma_diagonal"] is True
    assert complete_generations(home) == [0, 1]
    rewards = np.load(layout.generation(home, 1) / "rewards.npy")
    assert rewards.shape == (5, 2)
    assert np.load(layout.generation(home, 1) / "mean.npy").shape == ((32 + 2 * 16) * 3 + 3,)
    assert not (layout.generation(home, 0) / "optimizer.pkl").exists()  # keeps 1
    assert "evaluation" not in load_summary(home, 0)  # every 2 generations
    assert len(load_summary(home, 1)["evaluation"]["rewards"]) == 3
    assert load_summary(home, 1)["evaluation"]["laps_finished"] == 0
    # Trained in M's dream (its heads), evaluated on CarRacing.
    # Dreams of 20 steps (the real episodes' 30 aside): no dream episode runs longer.
    assert load_summary(home, 1)["dream"] == {
        "temperature": 1.2,
        "horizon": 20,
        "disagreement_penalty": 0.5,
    }
    assert load_summary(home, 1)["steps"] <= 5 * 2 * 20
    assert control["settings"]["dream_horizon"] == 20
    assert control["settings"]["in_dream"] is True
    assert control["settings"]["stall_steps"] == 5
    assert control["settings"]["seed"] == 5
    assert 0 <= load_summary(home, 1)["stalled_episodes"] <= 10
    gif = tmp_path / "dream.gif"
    render.main(["--home", str(home), "--dream", "--episode-length", "5", "--out", str(gif)])
    assert 1 <= Image.open(gif).n_frames <= 5

    # The ship step: the best evaluated generation (the only one) on 3 validation tracks of
    # seed 4, then tested on 2 episodes of stock CarRacing-v3 and written with its card.
    validation = json.loads(layout.evaluation_file(home, 1, seed=4).read_text())
    assert len(validation["rewards"]) == 3
    test = json.loads((layout.shipped(home) / "evaluation.json").read_text())
    assert len(test["rewards"]) == 2 and test["env"] == "stock" and test["episode_length"] == 30
    recipe = json.loads(layout.recipe_record(home).read_text())
    assert recipe["ship"]["generation"] == 1
    assert recipe["iterations"]["1"]["reason"].startswith("the run's 2 generations")
    assert (layout.shipped(home) / "card.md").exists()

    # A dream warm start: the run resumed without --in-dream (and reading mu) goes on in
    # CarRacing from the distribution its dream generations reached, recorded as a new phase.
    train_controller.main(
        ["--home", str(home), "--generations", "3", "--popsize", "5", "--seed", "5"]
        + ["--episodes-per-candidate", "2", "--sigma0", "0.2", "--cma-diagonal"]
        + ["--stall-steps", "5", "--env", "stock", "--episode-length", "30", "--latent", "mode"]
        + ["--eval-every", "0", "--num-process", "1", "--envs-per-worker", "3"]
    )
    assert "fitness from CarRacing from generation 2 on" in capsys.readouterr().out
    expected = np.asarray(load_optimizer(home, 1).ask())
    np.testing.assert_array_equal(np.load(layout.generation(home, 2) / "population.npy"), expected)
    assert "dream" not in load_summary(home, 2) and load_summary(home, 2)["latent"] == "mode"
    phase = layout.recorded_run(layout.control(home))["earlier_phases"][-1]
    assert phase["until_generation"] == 2 and phase["command"]["in_dream"] is True


def test_pipeline_overrides_are_strict(tmp_path):
    with pytest.raises(SystemExit):
        pipeline.main(["--home", str(tmp_path), "--set", "vae.epoch=3"])
    assert pipeline.parse_overrides(["vae.epochs=3", "env.env=stock"]) == {
        "vae": {"epochs": 3},
        "env": {"env": "stock"},
    }


def test_the_cached_tiny_home_is_a_new_one_for_another_version(tmp_path, monkeypatch):
    trained_homes = []
    monkeypatch.setattr(pipeline.tempfile, "gettempdir", lambda: str(tmp_path))
    monkeypatch.setattr(pipeline, "main", lambda argv: trained_homes.append(argv[-1]))
    monkeypatch.setenv("WORLD_MODELS_HOME", str(tmp_path / "untrained"))
    homes = []
    for version in ("0.1.0", "0.1.0", "0.2.0"):
        monkeypatch.setattr(pipeline, "__version__", version)
        homes.append(pipeline.agent_home())
    assert homes[0] == homes[1] != homes[2]
    assert trained_homes == [str(home) for home in homes]
    assert all(home.parent == tmp_path for home in homes)


def test_a_controller_is_only_used_with_the_world_model_it_was_trained_on(
    trained_controller_home, tmp_path, capsys
):
    """Iteration two retrains V and M: the old generations are then refused, the search goes
    on from its distribution, and "best" means the best on the new V and M."""
    import tensorflow as tf

    from worldmodels.control import train_controller
    from worldmodels.control.generations import (
        load_agent_controller,
        resolve_generation,
    )
    from worldmodels.training import restore_latest_weights
    from worldmodels.vision.vae import FRAME_SHAPE, VAE
    from worldmodels.world_model import world_model_id

    home = tmp_path / "home"
    shutil.copytree(trained_controller_home, home)
    first_world_model = world_model_id(home)
    assert load_summary(home, 1)["world_model"] == first_world_model
    assert load_agent_controller(home, "1").generation == 1

    vae = VAE()
    vae(tf.zeros((1, *FRAME_SHAPE)))
    restore_latest_weights(home / "vae-training", vae, "train_vae")
    vae.encoder.layers[0].kernel.assign_add(tf.fill(vae.encoder.layers[0].kernel.shape, 0.01))
    checkpoints = home / "vae-training" / "checkpoints"
    tf.train.Checkpoint(model=vae).write(str(checkpoints / "ckpt-999"))
    (checkpoints / "checkpoint").write_text('model_checkpoint_path: "ckpt-999"\n')
    assert world_model_id(home) not in (None, first_world_model)

    with pytest.raises(SystemExit, match="generation 1 was trained on other VAE"):
        evaluate.main(["--home", str(home), "--generation", "1", "--episodes", "1"])
    with pytest.raises(ValueError, match="no generation .* was trained on"):
        resolve_generation(home, "best", world_model_id(home))

    train_controller.main(
        [
            *("--home", str(home), "--generations", "3", "--popsize", "4"),
            *("--episodes-per-candidate", "1", "--episode-length", "30", "--num-process", "2"),
            *("--envs-per-worker", "2", "--eval-every", "1", "--eval-episodes", "2"),
        ]
    )
    assert "V and M changed since generation 1" in capsys.readouterr().out
    assert load_summary(home, 2)["world_model"] == world_model_id(home)
    assert load_agent_controller(home, "best").generation == 2


@pytest.fixture(scope="module")
def discrete_home(tmp_path_factory):
    """The tiny pipeline of the discrete source's agent: a discrete VAE and a V-only
    controller with two actions, no MDN-RNN."""
    home = tmp_path_factory.mktemp("discrete") / "home"
    flags = [f"--set={key}={json.dumps(value)}" for key, value in DISCRETE_OVERRIDES.items()]
    pipeline.main(["--preset", "tiny", "--home", str(home), "--num-process", "2", *flags])
    return home


def test_the_discrete_v_only_agent_trains_evaluates_renders_and_ships(discrete_home, tmp_path):
    from worldmodels.agent_archive import export_agent, install_agent
    from worldmodels.control import render

    home = discrete_home
    assert not (home / "memory-training").exists() and not (home / "latent-stats").exists()
    assert json.loads((home / "vae-training" / "run.json").read_text())["settings"]["latent"] == (
        "discrete"
    )
    assert np.load(layout.generation(home, 1) / "mean.npy").shape == (1024 * 2 + 2,)
    # The schedules, per epoch: start, then end + (start - end) / 2^(epoch / half-life).
    rows = list(csv.DictReader(open(home / "vae-training" / "losses.csv")))
    by_epoch = {int(r["epoch"]): (float(r["temperature"]), float(r["kl_weight"])) for r in rows}
    np.testing.assert_allclose(by_epoch[1], (3.0, 1.0))
    np.testing.assert_allclose(by_epoch[2], (2.0, 0.5 + 0.5 * 0.5**0.5), rtol=1e-6)
    assert list(layout.evaluations(home).glob("*.json"))
    render.main(["--home", str(home), "--episode-length", "5", "--out", str(tmp_path / "a.gif")])
    assert (tmp_path / "a.gif").stat().st_size > 0

    # The tiny recipe's last generation: V was retrained for its second iteration.
    export_agent(home, 3, tmp_path / "agent.tar.gz")
    installed = tmp_path / "installed"
    install_agent(str(tmp_path / "agent.tar.gz"), installed)
    evaluate.main(
        ["--home", str(installed), "--episodes", "2", "--episode-length", "20"]
        + ["--num-process", "1", "--generation", "3"]
    )
    report = json.loads((layout.evaluations(installed) / "generation_3-mean.json").read_text())
    assert len(report["rewards"]) == 2
    assert report["latent"] == "mode"  # as the archive's generation was trained


def test_what_a_discrete_vae_cannot_do_is_refused_clearly(discrete_home, tmp_path):
    from worldmodels.control import train_controller
    from worldmodels.data import sample_latent_stats

    with pytest.raises(SystemExit, match="discrete.*--controller-inputs z"):
        sample_latent_stats.main(["--home", str(discrete_home)])
    home = tmp_path / "home"
    shutil.copytree(discrete_home / "vae-training", home / "vae-training")
    with pytest.raises(SystemExit, match="no MDN-RNN on discrete latents"):
        train_controller.main(["--home", str(home), "--generations", "1"])
    with pytest.raises(SystemExit):
        pipeline.main(["--home", str(tmp_path / "other"), "--set", "vae.latent=discrete"])


def test_dreaming_needs_an_mdn_rnn_with_heads(agent_home, tmp_path):
    home = tmp_path / "home"
    shutil.copytree(agent_home, home)
    with pytest.raises(SystemExit, match="--reward-done-heads"):
        train_controller.main(["--home", str(home), "--in-dream", "--generations", "1"])
    train_controller.main(
        ["--home", str(home), "--generations", "1", "--popsize", "2", "--episodes-per-candidate"]
        + ["1", "--episode-length", "5", "--num-process", "1", "--eval-every", "0"]
    )
    with pytest.raises(SystemExit, match="--reward-done-heads"):
        render.main(["--home", str(home), "--dream", "--out", str(tmp_path / "dream.gif")])


def test_a_full_agent_without_an_mdn_rnn_is_refused(agent_home, tmp_path):
    from worldmodels.control import train_controller

    home = tmp_path / "home"
    shutil.copytree(agent_home / "vae-training", home / "vae-training")
    with pytest.raises(SystemExit, match="memory-training.*train_memory"):
        train_controller.main(["--home", str(home), "--generations", "1"])


def test_a_controller_run_recorded_before_stalls_and_dreams_resumes(
    trained_controller_home, tmp_path
):
    home = tmp_path / "home"
    shutil.copytree(trained_controller_home, home)
    run_file = layout.control_run_file(home)
    run = json.loads(run_file.read_text())
    del run["schema"]  # a record of schema 1, before these were settings
    for key in (
        "controller_inputs",
        "actions",
        "stall_steps",
        "in_dream",
        "dream_temperature",
        "dream_horizon",
    ):
        del run["settings"][key]
    del run["settings"]["latent"]
    run_file.write_text(json.dumps(run))
    for generation in (0, 1):
        summary_file = layout.generation(home, generation) / "summary.json"
        summary = json.loads(summary_file.read_text())
        del summary["latent"]
        summary_file.write_text(json.dumps(summary))
    assert load_agent_controller(home, "1").latent == "sample"
    train_controller.main(
        ["--home", str(home), "--generations", "3", "--popsize", "4", "--episodes-per-candidate"]
        + ["1", "--episode-length", "30", "--num-process", "2", "--envs-per-worker", "2"]
        + ["--eval-every", "1", "--eval-episodes", "2"]
    )
    assert complete_generations(home) == [0, 1, 2]
    assert load_summary(home, 2)["latent"] == "sample"
    rewritten = layout.recorded_run(layout.control(home))
    assert rewritten["earlier_phases"] == [] and rewritten["schema"] == RUN_SCHEMA
    assert rewritten["settings"]["stall_steps"] == 0 and rewritten["settings"]["actions"] == 3


def test_the_readme_iteration_two_runs_and_reruns_as_a_no_op(trained_controller_home, tmp_path):
    """The README's five commands of iteration two, shrunk; then all five again, as a user
    resuming an interrupted script would: nothing is trained or sampled twice."""
    from worldmodels.data import sample_latent_stats
    from worldmodels.memory import train_memory
    from worldmodels.vision import train_vae

    home = tmp_path / "home"
    shutil.copytree(trained_controller_home, home)
    flags = ["--home", str(home)]
    controller = ["--generations", "3", "--popsize", "4", "--episodes-per-candidate", "1"]
    controller += ["--episode-length", "30", "--num-process", "1", "--envs-per-worker", "2"]
    controller += ["--eval-every", "1", "--eval-episodes", "2"]

    def iteration_two():
        sample_policy.main(
            [*flags, "--policy", "controller", "--generation", "best", "--episodes", "2"]
            + ["--episode-length", "30", "--num-process", "1"]
        )
        train_vae.main(
            [*flags, "--dataset", "controller", "--load-model", "--epochs", "1"]
            + ["--batch-size", "16", "--shuffle-buffer", "64"]
        )
        sample_latent_stats.main([*flags, "--dataset", "controller", "--overwrite"])
        train_memory.main(
            [
                *flags,
                "--dataset",
                "controller",
                "--load-model",
                "--epochs",
                "1",
                "--batch-size",
                "2",
            ]
        )
        train_controller.main([*flags, *controller])

    def state():
        """Every file of the home and its content, but TensorBoard's (each process writes an
        events file of its own)."""
        return {
            str(path.relative_to(home)): path.read_bytes()
            for path in home.rglob("*")
            if path.is_file() and "tensorboard" not in path.parts
        }

    iteration_two()
    assert len(list_episodes(layout.rollouts(home, "controller"))) == 2
    for directory in (layout.vae_training(home), layout.memory_training(home)):
        assert layout.recorded_run(directory)["settings"]["dataset"] == "controller"
        assert len(list((directory / "previous-runs").glob("run-*"))) == 1
    assert complete_generations(home) == [0, 1, 2]
    assert load_summary(home, 2)["world_model"] != load_summary(home, 1)["world_model"]
    before = state()
    iteration_two()
    assert state() == before


def test_the_histogram_of_low_rewards_is_not_squashed_by_the_solved_line():
    axes = evaluation.histogram(np.array([19.0, 21.5, 24.0]), "tiny").axes[0]
    low, high = axes.get_xlim()
    assert low <= 19 and 24 <= high < 19 + 10 * 5  # the bars' own range, not 0..900
    assert not any("solved" in line.get_label() for line in axes.lines)
    axes = evaluation.histogram(np.array([850.0, 910.0]), "trained").axes[0]
    assert any("solved" in line.get_label() for line in axes.lines)
