"""How well the MDN-RNN predicts k steps ahead on held-out episodes, against a no-memory
baseline (`worldmodels.memory.evaluate_memory`, its command, says how)."""

from __future__ import annotations

import functools
import json
import math
import sys
from pathlib import Path

import numpy as np
import tensorflow as tf
from matplotlib.figure import Figure

from worldmodels import layout
from worldmodels.data.tf_records import (
    LATENT_STATS,
    CorruptEpisodeError,
    readable_records,
)
from worldmodels.files import atomic_write_text
from worldmodels.images import save_figure
from worldmodels.latent_stats import require_current_latent_stats
from worldmodels.memory.memory import MDNRNN, sample_next_latent
from worldmodels.memory.numpy_memory import NumpyMemory
from worldmodels.memory.trained import load_memory
from worldmodels.records import read_run
from worldmodels.seeds import Stream, derive_seed
from worldmodels.training import NoEpisodesError, recorded_episodes, require_checkpoint

LOG_SQRT_TWO_PI = 0.5 * math.log(2 * math.pi)


def recorded_latents(stats: dict, seed: int) -> np.ndarray:
    """T x 32 z of an episode, drawn from its recorded (mu, logvar) as training draws them."""
    noise = np.random.default_rng(seed).standard_normal(stats["mu"].shape)
    return (stats["mu"] + np.exp(stats["logvar"] / 2) * noise).astype(np.float32)


def mixture_scores(logit_pi, mu, log_sigma, target) -> tuple[np.ndarray, np.ndarray]:
    """Per row: the mixture's NLL of `target` (mean over dimensions) and the squared error
    of the mixture's mean (mean over dimensions). Inputs [B, D, K] and [B, D]."""
    logit_pi, mu, log_sigma = (np.asarray(a, np.float64) for a in (logit_pi, mu, log_sigma))
    log_pi = logit_pi - np.logaddexp.reduce(logit_pi, axis=-1, keepdims=True)
    standardized = (target[..., None] - mu) * np.exp(-log_sigma)
    log_normal = -0.5 * standardized**2 - log_sigma - LOG_SQRT_TWO_PI
    nll = -np.logaddexp.reduce(log_pi + log_normal, axis=-1).mean(-1)
    mean = (np.exp(log_pi) * mu).sum(-1)
    return nll, ((mean - target) ** 2).mean(-1)


def k_step_prediction(
    memory: MDNRNN,
    episodes: list[tuple[np.ndarray, np.ndarray]],
    horizon: int,
    stride: int,
    temperature: float,
    seed: int,
) -> dict[str, np.ndarray]:
    """Scores of M's open-loop predictions, for k = 1..horizon.

    `episodes`: (z T x 32, action T x 3) pairs. Returns "nll" and "squared_error", each an
    array [starts, horizon]: row s, column k - 1 scores the prediction of z_{t+k} from start
    t of row s.
    """
    stepper = NumpyMemory(memory)
    generator = tf.random.Generator.from_seed(seed)
    nll, squared_error = [], []
    for z, action in episodes:
        starts = list(range(0, len(z) - horizon, stride))
        if not starts:
            continue
        # Follow the recording once, forking the state at every start.
        state, forks, fork_at = stepper.initial_state(1), [], set(starts)
        for t in range(starts[-1] + 1):
            state = stepper.step(z[t : t + 1], action[t : t + 1], state)
            if t in fork_at:
                forks.append(state)
        state = {name: np.concatenate([f[name] for f in forks]) for name in forks[0]}
        starts = np.array(starts)
        episode_nll, episode_error = [], []
        for k in range(1, horizon + 1):
            mixture = memory.mixture(tf.constant(state["features"]))
            scores = mixture_scores(*(m.numpy() for m in mixture), z[starts + k])
            episode_nll.append(scores[0])
            episode_error.append(scores[1])
            if k < horizon:
                drawn = sample_next_latent(*mixture, temperature, generator=generator)
                state = stepper.step(drawn.numpy(), action[starts + k], state)
        nll.append(np.stack(episode_nll, axis=1))
        squared_error.append(np.stack(episode_error, axis=1))
    return {"nll": np.concatenate(nll), "squared_error": np.concatenate(squared_error)}


def no_memory_prediction(
    training: list[np.ndarray], held_out: list[np.ndarray], horizon: int, stride: int
) -> dict[str, np.ndarray]:
    """The baseline z_{t+k} ~ N(z_t, var_k), var_k per dimension from `training`'s z;
    scored like `k_step_prediction` on `held_out`'s z."""
    nll, squared_error = [], []
    for k in range(1, horizon + 1):
        differences = np.concatenate([z[k:] - z[:-k] for z in training if len(z) > k])
        log_sigma = 0.5 * np.log(differences.var(axis=0))
        rows_nll, rows_error = [], []
        for z in held_out:
            starts = np.arange(0, len(z) - horizon, stride)
            error = z[starts + k] - z[starts]
            rows_nll.append(
                (0.5 * (error * np.exp(-log_sigma)) ** 2 + log_sigma + LOG_SQRT_TWO_PI).mean(-1)
            )
            rows_error.append((error**2).mean(-1))
        nll.append(np.concatenate(rows_nll))
        squared_error.append(np.concatenate(rows_error))
    return {"nll": np.stack(nll, axis=1), "squared_error": np.stack(squared_error, axis=1)}


def evaluate_memory(
    home: Path,
    steps: list[int],
    stride: int = 25,
    temperature: float = 1.0,
    seed: int = 0,
    on_corrupt: str = "error",
) -> str:
    """Scores the home's MDN-RNN `steps` ahead on its held-out episodes against the no-memory
    baseline, writes memory-training/prediction.{json,png} and returns the table and summary
    line; exits with a message naming what is missing."""
    require_checkpoint(layout.memory_training(home), "memory.train_memory")
    run_directory = layout.memory_training(home)
    if not layout.recorded_run(run_directory).get("validation_episodes"):
        sys.exit(
            f"error: the MDN-RNN run in {run_directory} held out no episodes; "
            "train it with --validation-share > 0 to measure its predictions on unseen ones"
        )
    for dataset in layout.trained_datasets(run_directory):
        require_current_latent_stats(layout.latent_stats(home, dataset), dataset, home)
    try:
        paths, validation = recorded_episodes(
            run_directory, functools.partial(layout.latent_stats, home)
        )
    except NoEpisodesError as error:
        sys.exit(f"error: {error}, the latent statistics the MDN-RNN was trained on")
    horizon = max(steps)
    held_out, training = [], []
    validation = set(validation)
    try:
        for index, stats in readable_records(paths, LATENT_STATS, on_corrupt):
            z = recorded_latents(stats, derive_seed(seed, Stream.PREDICTION, index))
            if paths[index] in validation:
                held_out.append((z, stats["action"]))
            else:
                training.append(z)
    except CorruptEpisodeError as error:
        sys.exit(f"error: {error}")
    held_out = [(z, a) for z, a in held_out if len(z) > horizon]
    if not held_out:
        sys.exit(f"error: no held-out episode is longer than {horizon} steps")

    memory = k_step_prediction(
        load_memory(home),
        held_out,
        horizon,
        stride,
        temperature,
        derive_seed(seed, Stream.PREDICTION),
    )
    baseline = no_memory_prediction(training, [z for z, _ in held_out], horizon, stride)
    report = {
        "steps": steps,
        "starts": int(len(memory["nll"])),
        "episodes": len(held_out),
        "temperature": temperature,
        "memory": read_run(run_directory)["settings"]["memory"],
    }
    for name, scores in (("mdn_rnn", memory), ("no_memory", baseline)):
        report[name] = {
            measure: {str(k): float(values[:, k - 1].mean()) for k in steps}
            for measure, values in scores.items()
        }
    out = layout.memory_training(home) / layout.PREDICTION
    atomic_write_text(out.with_suffix(".json"), json.dumps(report, indent=2) + "\n")
    save_prediction_figure(out.with_suffix(".png"), memory, baseline, report)

    lines = [f"{'k':>4} {'NLL M':>9} {'NLL z_t':>9} {'MSE M':>9} {'MSE z_t':>9}"]
    for k in steps:
        lines.append(
            f"{k:>4} {report['mdn_rnn']['nll'][str(k)]:>9.3f} "
            f"{report['no_memory']['nll'][str(k)]:>9.3f} "
            f"{report['mdn_rnn']['squared_error'][str(k)]:>9.4f} "
            f"{report['no_memory']['squared_error'][str(k)]:>9.4f}"
        )
    lines.append(
        f"scored {report['starts']} starts of {len(held_out)} held-out episodes; "
        f"table and figure in {out}.{{json,png}}"
    )
    return "\n".join(lines)


def save_prediction_figure(path, memory: dict, baseline: dict, report: dict) -> None:
    figure = Figure(figsize=(9, 3.5))
    horizon = memory["nll"].shape[1]
    ks = np.arange(1, horizon + 1)
    for axes, measure, label in zip(
        figure.subplots(1, 2),
        ("nll", "squared_error"),
        ("NLL per dimension (nats)", "squared error of the mean"),
    ):
        axes.plot(ks, memory[measure].mean(0), label=f"MDN-RNN ({report['memory']})")
        axes.plot(ks, baseline[measure].mean(0), "--", label="no memory: z_t")
        axes.set(xlabel="steps ahead (k)", ylabel=label)
        axes.legend()
    figure.suptitle(f"open-loop prediction, {report['starts']} starts on held-out episodes")
    save_figure(figure, path)
