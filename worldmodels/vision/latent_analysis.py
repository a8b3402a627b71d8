"""How a VAE's latent space is organised along time (`worldmodels.vision.latent_structure`, its
command, says what is measured): frame-to-frame KL in closed form, and reconstruction error."""

from __future__ import annotations

import functools
import json
import sys
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from worldmodels import layout
from worldmodels.data.tf_records import (
    EPISODE,
    CorruptEpisodeError,
    list_episodes,
    readable_records,
)
from worldmodels.files import atomic_write_text
from worldmodels.images import save_figure, unit_frames
from worldmodels.training import NoEpisodesError, recorded_episodes, require_checkpoint
from worldmodels.vision.trained import load_vae


def gaussian_kl(mu_p, logvar_p, mu_q, logvar_q) -> np.ndarray:
    """KL(N(mu_p, exp logvar_p) || N(mu_q, exp logvar_q)) of diagonal Gaussians in nats,
    summed over the last axis, in closed form."""
    return 0.5 * np.sum(
        logvar_q - logvar_p + (np.exp(logvar_p) + (mu_p - mu_q) ** 2) / np.exp(logvar_q) - 1.0,
        axis=-1,
    )


def categorical_kl(logits_p, logits_q) -> np.ndarray:
    """KL(softmax(logits_p) || softmax(logits_q)) in nats, summed over the variables: inputs
    [..., variables, classes] -> [...]."""
    log_p = logits_p - np.logaddexp.reduce(logits_p, axis=-1, keepdims=True)
    log_q = logits_q - np.logaddexp.reduce(logits_q, axis=-1, keepdims=True)
    return np.sum(np.exp(log_p) * (log_p - log_q), axis=(-1, -2))


def consecutive_kl(parameters: tuple[np.ndarray, ...], latent: str) -> np.ndarray:
    """KL(q_t || q_{t+1}) for t = 0 .. T-2, from the encoder's outputs along a sequence."""
    if latent == "discrete":
        (logits,) = parameters
        return categorical_kl(logits[:-1], logits[1:])
    mu, logvar = parameters
    return gaussian_kl(mu[:-1], logvar[:-1], mu[1:], logvar[1:])


def episode_structure(vae, frames: np.ndarray, order: np.ndarray) -> dict[str, np.ndarray]:
    """Per step of one episode: ordered and shuffled consecutive KL, reconstruction error."""
    inputs = unit_frames(frames)
    parameters = tuple(p.numpy().astype(np.float64) for p in vae.posterior(inputs))
    reconstruction = vae.reconstruct(inputs).numpy()
    return {
        "kl_ordered": consecutive_kl(parameters, vae.latent),
        "kl_shuffled": consecutive_kl(tuple(p[order] for p in parameters), vae.latent),
        "reconstruction_error": np.mean((reconstruction - inputs.numpy()) ** 2, axis=(1, 2, 3)),
    }


def summarise(curves: list[np.ndarray]) -> dict:
    """Mean and std over every step of every episode, and per step over episodes."""
    length = min(len(curve) for curve in curves)
    aligned = np.stack([curve[:length] for curve in curves])
    everything = np.concatenate(curves)
    return {
        "mean": float(everything.mean()),
        "std": float(everything.std()),
        "per_step_mean": aligned.mean(0).tolist(),
        "per_step_std": aligned.std(0).tolist(),
    }


def held_out_episodes(home: Path) -> list[Path]:
    """The episodes the home's VAE run held out for validation."""
    rollouts = functools.partial(layout.rollouts, home)
    return recorded_episodes(layout.vae_training(home), rollouts)[1]


def measure_latent_structure(
    homes: list[Path],
    episodes_folder: str | None = None,
    max_episodes: int = 20,
    seed: int = 0,
    out: Path | None = None,
    on_corrupt: str = "error",
) -> str:
    """Measures the latest VAE of each of `homes` on the same episodes (those of
    `episodes_folder`, else those the first home's VAE held out), writes `out`.json and
    `out`.png (default: <first home>/plots/latent-structure) and returns the summary lines."""
    for home in homes:
        require_checkpoint(layout.vae_training(home), "vision.train_vae")
    try:
        paths = list_episodes(episodes_folder) if episodes_folder else held_out_episodes(homes[0])
    except NoEpisodesError as error:
        sys.exit(
            f"error: {error}, the VAE of {homes[0]}'s dataset, whose held-out episodes are "
            "measured unless --episodes names a folder"
        )
    if not paths:
        sys.exit(
            f"error: no episodes to measure on: the VAE of {homes[0]} held none out "
            "(train it with --validation-share > 0) and no --episodes folder was given"
        )
    try:
        episodes = [
            episode["observation"]
            for _, episode in readable_records(paths[:max_episodes], EPISODE, on_corrupt)
        ]
    except CorruptEpisodeError as error:
        sys.exit(f"error: {error}")
    episodes = [frames for frames in episodes if len(frames) >= 2]
    orders = [np.random.default_rng([seed, i]).permutation(len(f)) for i, f in enumerate(episodes)]

    report = {"episodes": len(episodes), "vaes": {}}
    for home in homes:
        vae = load_vae(home)
        measured = [episode_structure(vae, f, o) for f, o in zip(episodes, orders)]
        label = f"{vae.latent} ({home.name})"
        report["vaes"][label] = {
            "home": str(home),
            "latent": vae.latent,
            **{name: summarise([m[name] for m in measured]) for name in measured[0]},
        }

    out = out or layout.plots(homes[0]) / "latent-structure"
    out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out.with_suffix(".json"), json.dumps(report, indent=2) + "\n")
    save_structure_figure(out.with_suffix(".png"), report)
    lines = [
        (
            f"{label}: KL ordered {result['kl_ordered']['mean']:.2f} ± "
            f"{result['kl_ordered']['std']:.2f}, shuffled {result['kl_shuffled']['mean']:.2f} ± "
            f"{result['kl_shuffled']['std']:.2f} nats; reconstruction error "
            f"{result['reconstruction_error']['mean']:.5f} ± "
            f"{result['reconstruction_error']['std']:.5f}"
        )
        for label, result in report["vaes"].items()
    ]
    return "\n".join([*lines, f"measured {len(episodes)} episodes; wrote {out}.json and {out}.png"])


def save_structure_figure(path: Path, report: dict) -> None:
    vaes = report["vaes"]
    figure = Figure(figsize=(5 * (len(vaes) + 1), 3.8))
    axes = figure.subplots(1, len(vaes) + 1)
    for panel, (label, result) in zip(axes, vaes.items()):
        for name, style in (("kl_shuffled", "-"), ("kl_ordered", "-")):
            panel.plot(result[name]["per_step_mean"], style, label=name.split("_")[1])
        panel.set(xlabel="step", ylabel="KL(q_t || q_t+1), nats", title=label)
        panel.legend()
    errors = axes[-1]
    for label, result in vaes.items():
        mean = np.array(result["reconstruction_error"]["per_step_mean"])
        std = np.array(result["reconstruction_error"]["per_step_std"])
        errors.plot(mean, label=label)
        errors.fill_between(np.arange(len(mean)), mean - std, mean + std, alpha=0.25)
    errors.set(xlabel="step", ylabel="reconstruction MSE", title="reconstruction error")
    errors.legend()
    figure.suptitle(f"latent structure over {report['episodes']} episodes (mean over episodes)")
    save_figure(figure, path)
