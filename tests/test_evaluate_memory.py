"""The k-step prediction measure: exact on a memory whose predictions are known, and the
command end to end on a tiny home."""

import json
import math
import shutil

import numpy as np
import pytest
import tensorflow as tf
from conftest import synthetic_episode

from worldmodels import layout
from worldmodels.data import sample_latent_stats
from worldmodels.data.tf_records import episode_filename, save_episode
from worldmodels.memory import evaluate_memory, train_memory
from worldmodels.memory.memory import MDNRNN
from worldmodels.memory.memory_evaluation import k_step_prediction, no_memory_prediction
from worldmodels.vision import train_vae


def standard_normal_memory():
    """An MDN-RNN whose every mixture is 5 copies of N(0, 1), whatever it has seen."""
    memory = MDNRNN(lstm_units=8)
    memory(tf.zeros((1, 2, 35)))
    memory.mdn.kernel.assign(tf.zeros_like(memory.mdn.kernel))
    memory.mdn.bias.assign(tf.zeros_like(memory.mdn.bias))
    return memory


def test_k_step_scores_of_a_memory_with_known_predictions():
    rng = np.random.default_rng(0)
    episodes = [
        (rng.normal(size=(length, 32)).astype(np.float32), rng.uniform(size=(length, 3)))
        for length in (30, 41)
    ]
    scores = k_step_prediction(
        standard_normal_memory(), episodes, horizon=5, stride=4, temperature=1.0, seed=0
    )
    starts = [np.arange(0, len(z) - 5, 4) for z, _ in episodes]
    assert scores["nll"].shape == (sum(len(s) for s in starts), 5)
    for k in range(1, 6):
        targets = np.concatenate([z[s + k] for (z, _), s in zip(episodes, starts)])
        # N(0, 1) per dimension: NLL z^2 / 2 + log sqrt(2 pi); its mean 0 is off by z^2.
        expected_nll = (0.5 * targets**2 + 0.5 * math.log(2 * math.pi)).mean(-1)
        np.testing.assert_allclose(scores["nll"][:, k - 1], expected_nll, rtol=1e-5)
        np.testing.assert_allclose(
            scores["squared_error"][:, k - 1], (targets**2).mean(-1), rtol=1e-5
        )


def test_the_no_memory_baseline_is_a_gaussian_around_z_t():
    rng = np.random.default_rng(1)
    training = [np.cumsum(rng.normal(size=(200, 32)), 0)]  # a random walk: var of k steps = k
    held_out = [np.cumsum(rng.normal(size=(40, 32)), 0)]
    scores = no_memory_prediction(training, held_out, horizon=3, stride=5)
    starts = np.arange(0, 40 - 3, 5)
    for k in (1, 2, 3):
        variance = np.concatenate([z[k:] - z[:-k] for z in training]).var(0)
        assert np.allclose(variance, k, rtol=0.35)
        error = held_out[0][starts + k] - held_out[0][starts]
        expected = (error**2 / (2 * variance) + 0.5 * np.log(2 * math.pi * variance)).mean(-1)
        np.testing.assert_allclose(scores["nll"][:, k - 1], expected, rtol=1e-6)
        np.testing.assert_allclose(scores["squared_error"][:, k - 1], (error**2).mean(-1))


@pytest.fixture(scope="module")
def memory_home(tmp_path_factory):
    """6 synthetic episodes of 30 steps, a VAE, their latent stats, and an MDN-RNN that held
    out 2 of them."""
    home = tmp_path_factory.mktemp("memory") / "home"
    for index in range(6):
        save_episode(
            layout.rollouts(home, "random") / episode_filename(index),
            synthetic_episode(30, seed=index),
        )
    flags = ["--home", str(home)]
    train_vae.main([*flags, "--epochs", "1", "--batch-size", "32", "--shuffle-buffer", "32"])
    sample_latent_stats.main(flags)
    train_memory.main([*flags, "--epochs", "1", "--batch-size", "4", "--validation-share", "0.3"])
    return home


def test_the_command_scores_the_held_out_episodes(memory_home, capsys):
    evaluate_memory.main(["--home", str(memory_home), "--steps", "1", "3", "--stride", "5"])
    out = capsys.readouterr().out
    report = json.loads((layout.memory_training(memory_home) / "prediction.json").read_text())
    assert report["episodes"] == 2 and report["starts"] == 2 * len(range(0, 30 - 3, 5))
    for model in ("mdn_rnn", "no_memory"):
        assert set(report[model]["nll"]) == {"1", "3"}
        assert all(math.isfinite(v) for v in report[model]["squared_error"].values())
    assert (layout.memory_training(memory_home) / "prediction.png").stat().st_size > 0
    assert f"{report['mdn_rnn']['nll']['3']:.3f}" in out


def test_the_command_needs_held_out_episodes(memory_home, tmp_path):
    home = tmp_path / "home"
    shutil.copytree(memory_home, home)
    train_memory.main(
        ["--home", str(home), "--epochs", "1", "--validation-share", "0", "--load-model"]
    )
    with pytest.raises(SystemExit, match="--validation-share"):
        evaluate_memory.main(["--home", str(home)])
