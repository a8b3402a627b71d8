"""--strategy mirrored: V and M trained with tf.distribute.MirroredStrategy on two logical CPU
devices (in a subprocess, as TensorFlow fixes its devices at start-up) equal one device."""

import csv
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
from conftest import synthetic_episode

from worldmodels import layout
from worldmodels.data.tf_records import LATENT_STATS, episode_filename, save_episode, save_record

SCRIPT = str(Path(__file__).with_name("two_replicas.py"))


def two_replicas(*args: str) -> str:
    done = subprocess.run(
        [sys.executable, SCRIPT, *args], capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


def losses(run_directory: Path) -> list[dict]:
    with open(run_directory / layout.LOSSES, newline="") as file:
        return list(csv.DictReader(file))


def test_a_mirrored_vae_step_on_an_uneven_split_equals_the_step_on_one_device():
    result = json.loads(two_replicas("vae_step").splitlines()[-1])
    assert result["replicas"] == 2
    for name, value in result["default"].items():
        np.testing.assert_allclose(result["mirrored"][name], value, rtol=1e-6)
    assert result["default_step_size"] > 1e-4  # the step did move the weights
    assert result["largest_weight_difference"] < 1e-3 * result["default_step_size"]


def test_mirrored_memory_training_equals_one_device_and_resumes_from_its_checkpoints(tmp_path):
    homes = {name: tmp_path / name for name in ("default", "mirrored")}
    rng = np.random.default_rng(0)
    for index, length in enumerate((12, 9, 15, 6)):  # batches of 3 then 1: 2 + 1, then 1 + 0
        stats = {
            "mu": rng.normal(size=(length, 32)).astype(np.float32),
            "logvar": rng.normal(-2, 0.1, size=(length, 32)).astype(np.float32),
            "action": rng.uniform(-1, 1, size=(length, 3)).astype(np.float32),
            "reward": rng.normal(size=length).astype(np.float32),
            "done": np.arange(length) == length - 1,
            "seed": index,
            "policy": "random",
        }
        for home in homes.values():
            save_record(
                layout.latent_stats(home, "random") / episode_filename(index), stats, LATENT_STATS
            )

    def train(home, strategy, epochs):
        flags = ["--home", str(home), "--batch-size", "3", "--lstm-units", "16"]
        flags += ["--validation-share", "0", "--epochs", str(epochs), "--strategy", strategy]
        return two_replicas("train_memory", *flags)

    train(homes["default"], "default", 2)
    assert "on 2 replicas" in train(homes["mirrored"], "mirrored", 2)
    default, mirrored = (losses(layout.memory_training(homes[name])) for name in homes)
    assert [row["step"] for row in mirrored] == [row["step"] for row in default]
    assert len(default) == 4
    for name in ("loss", "learning_rate"):
        np.testing.assert_allclose(
            [float(row[name]) for row in mirrored], [float(row[name]) for row in default], rtol=1e-5
        )
    # Its checkpoints are the usual ones: one device resumes the run.
    assert "resumed" in train(homes["mirrored"], "default", 3)
    assert len(losses(layout.memory_training(homes["mirrored"]))) == 6


def test_a_mirrored_vae_run_trains_and_resumes_on_one_device(tmp_path):
    home = tmp_path / "home"
    for index in range(2):
        save_episode(
            layout.rollouts(home, "random") / episode_filename(index), synthetic_episode(9, index)
        )
    flags = ["--home", str(home), "--batch-size", "4", "--validation-share", "0"]
    assert "on 2 replicas" in two_replicas(
        "train_vae", *flags, "--epochs", "1", "--strategy", "mirrored"
    )
    out = two_replicas("train_vae", *flags, "--epochs", "2", "--strategy", "default")
    assert "resumed" in out and "on one device" in out
    rows = losses(layout.vae_training(home))
    assert [row["epoch"] for row in rows] == ["1"] * 5 + ["2"] * 5  # 18 frames: 4, 4, 4, 4, 2
    assert all(np.isfinite(float(row["loss"])) for row in rows)
