"""The latent-structure analysis: its KL formulas against closed forms and Monte Carlo, and the
command end to end on the tiny homes."""

import json

import numpy as np
import pytest

from worldmodels.vision import latent_structure
from worldmodels.vision.latent_analysis import categorical_kl, gaussian_kl


def test_gaussian_kl_equals_the_closed_form_and_a_monte_carlo_estimate():
    rng = np.random.default_rng(0)
    mu_p, mu_q = rng.normal(size=(2, 32))
    logvar_p, logvar_q = rng.normal(scale=0.5, size=(2, 32))
    sp, sq = np.exp(logvar_p / 2), np.exp(logvar_q / 2)
    closed = np.sum(np.log(sq / sp) + (sp**2 + (mu_p - mu_q) ** 2) / (2 * sq**2) - 0.5)
    assert gaussian_kl(mu_p, logvar_p, mu_q, logvar_q) == pytest.approx(closed)
    z = mu_p + sp * rng.normal(size=(200_000, 32))
    log_ratio = (-0.5 * ((z - mu_p) / sp) ** 2 - np.log(sp)) - (
        -0.5 * ((z - mu_q) / sq) ** 2 - np.log(sq)
    )
    assert log_ratio.sum(-1).mean() == pytest.approx(closed, rel=0.02)
    assert gaussian_kl(mu_p, logvar_p, mu_p, logvar_p) == pytest.approx(0, abs=1e-12)


def test_categorical_kl_equals_the_sum_over_variables_and_a_monte_carlo_estimate():
    rng = np.random.default_rng(1)
    logits_p, logits_q = rng.normal(size=(2, 32, 32))
    p = np.exp(logits_p) / np.exp(logits_p).sum(-1, keepdims=True)
    q = np.exp(logits_q) / np.exp(logits_q).sum(-1, keepdims=True)
    direct = np.sum(p * np.log(p / q))
    assert categorical_kl(logits_p, logits_q) == pytest.approx(direct)
    draws = np.stack([rng.choice(32, size=50_000, p=row) for row in p])  # 32 x draws
    estimate = np.mean(np.log(p[np.arange(32)[:, None], draws] / q[np.arange(32)[:, None], draws]))
    assert estimate * 32 == pytest.approx(direct, rel=0.05)


def test_the_command_compares_vaes_on_the_same_held_out_episodes(agent_home, tmp_path, capsys):
    out = tmp_path / "structure"
    latent_structure.main(["--homes", str(agent_home), str(agent_home), "--out", str(out)])
    report = json.loads(out.with_suffix(".json").read_text())
    assert report["episodes"] == 1  # the one episode of two that the VAE held out
    (result,) = report["vaes"].values()  # the same home twice is one label
    assert len(result["kl_ordered"]["per_step_mean"]) == 39  # 40 frames, 39 pairs
    assert result["kl_shuffled"]["mean"] >= 0 and result["reconstruction_error"]["mean"] > 0
    assert out.with_suffix(".png").stat().st_size > 0
    assert "KL ordered" in capsys.readouterr().out
