"""Stage 5, controller sampling, evaluation and the whole pipeline, end to end and tiny."""

import json
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from worldmodels import pipeline
from worldmodels.control import evaluate
from worldmodels.control.generations import (
    complete_generations,
    generation_path,
    load_optimizer,
    load_summary,
)
from worldmodels.data import sample_policy
from worldmodels.data.tf_records import list_episodes, load_episode


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
    np.testing.assert_array_equal(np.load(generation_path(home, 2) / "population.npy"), expected)
    for number in (0, 1, 2):
        folder = generation_path(home, number)
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
    assert "resuming after generation 2" in rerun.stdout  # nothing left to do, nothing redone
    changed = subprocess.run(
        controller_command(home, 3) + ["--sigma0", "0.5"], capture_output=True, text=True
    )
    assert changed.returncode != 0 and "sigma0: 0.1 -> 0.5" in changed.stderr


def test_evaluate_writes_rewards_and_histogram(trained_controller_home, capsys):
    home = trained_controller_home
    evaluate.main(
        [
            "--home",
            str(home),
            "--generation",
            "best",
            "--episodes",
            "3",
            "--episode-length",
            "30",
            "--num-process",
            "2",
            "--envs-per-worker",
            "2",
        ]
    )
    best = max((0, 1), key=lambda n: load_summary(home, n)["evaluation"]["mean"])
    report = json.loads(
        (home / "control" / "evaluations" / f"generation_{best}-mean.json").read_text()
    )
    assert len(report["rewards"]) == 3
    assert report["mean"] == pytest.approx(np.mean(report["rewards"]))
    assert (home / "control" / "evaluations" / f"generation_{best}-mean.png").stat().st_size > 0
    assert f"generation {best} (mean): " in capsys.readouterr().out


def test_bad_generation_is_a_clear_error(trained_controller_home):
    with pytest.raises(SystemExit, match="one of the complete generations 0..1"):
        evaluate.main(["--home", str(trained_controller_home), "--generation", "7"])


def test_controller_and_random_agent_sampling_write_episode_records(trained_controller_home):
    home = trained_controller_home
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


def test_tiny_pipeline_runs_all_stages(tmp_path, capsys):
    home = tmp_path / "home"
    pipeline.main(["--preset", "tiny", "--home", str(home), "--num-process", "2"])
    assert len(list_episodes(home / "random-rollouts")) == 4
    assert len(list_episodes(home / "latent-stats" / "random")) == 4
    assert (home / "vae-training" / "checkpoints" / "checkpoint").exists()
    assert (home / "memory-training" / "checkpoints" / "checkpoint").exists()
    assert complete_generations(home) == [0, 1]
    assert list((home / "control" / "evaluations").glob("*.json"))
    assert "pipeline (tiny) complete" in capsys.readouterr().out


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
    from worldmodels.control.agent import world_model_id
    from worldmodels.control.generations import load_agent_controller, resolve_generation
    from worldmodels.training import restore_latest_weights
    from worldmodels.vision.vae import FRAME_SHAPE, VAE

    home = tmp_path / "home"
    shutil.copytree(trained_controller_home, home)
    first_world_model = world_model_id(home)
    assert load_summary(home, 1)["world_model"] == first_world_model
    assert load_agent_controller(home, "1")[0] == 1

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
    assert load_agent_controller(home, "best")[0] == 2
