"""V and M as rollouts use them: one batched encoder call and one numpy LSTM step per step.

The MDN head is never evaluated in a rollout: the controller reads only the LSTM's h.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from worldmodels import layout
from worldmodels.control.controller import ACTION_DIM, LATENT_DIM
from worldmodels.memory.memory import MDNRNN
from worldmodels.params import MemoryParams
from worldmodels.training import restore_latest_weights
from worldmodels.vision.vae import FRAME_SHAPE, VAE


def require_trained_models(home: Path) -> None:
    """Exits with the command to run when the home has no VAE or no MDN-RNN checkpoint."""
    for run, command in (
        (layout.vae_training(home), "vision.train_vae"),
        (layout.memory_training(home), "memory.train_memory"),
    ):
        if tf.train.latest_checkpoint(str(run / layout.CHECKPOINTS)) is None:
            raise SystemExit(
                f"error: no checkpoint in {run / layout.CHECKPOINTS}; "
                f"run python -m worldmodels.{command} first"
            )


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 0.5 * (np.tanh(0.5 * x) + 1.0)


def memory_sizes(home: Path | None) -> dict:
    """`lstm_units` and `num_mixtures` of the home's MDN-RNN, from its run.json (the paper's
    256 and 5 without a home, or for a run recorded before they were settings)."""
    defaults = MemoryParams()
    sizes = {"lstm_units": defaults.lstm_units, "num_mixtures": defaults.num_mixtures}
    run_file = layout.memory_training(home) / layout.RUN_FILE if home is not None else None
    if run_file is not None and run_file.exists():
        settings = json.loads(run_file.read_text())["settings"]
        sizes.update({key: settings[key] for key in sizes if key in settings})
    return sizes


def build_world_model(home: Path | None) -> tuple[VAE, MDNRNN]:
    """The VAE and the MDN-RNN, built; with a `home`, with the sizes and the weights of its
    latest checkpoints, else with the paper's sizes and a fresh random initialisation."""
    vae = VAE(LATENT_DIM)
    vae(tf.zeros((1, *FRAME_SHAPE)))
    memory = MDNRNN(LATENT_DIM, ACTION_DIM, **memory_sizes(home))
    memory(tf.zeros((1, 1, LATENT_DIM + ACTION_DIM)))
    if home is not None:
        restore_latest_weights(layout.vae_training(home), vae, "train_vae")
        restore_latest_weights(layout.memory_training(home), memory, "train_memory")
    return vae, memory


class AgentModels:
    """The VAE encoder and the MDN-RNN's LSTM of one agent, built once per worker process.

    With a `home`, weights come from the latest checkpoints of `vae-training/` and
    `memory-training/`; without, V and M keep their random initialisation from `seed` (the
    paper's random-agent policy).
    """

    def __init__(self, home: Path | None = None, seed: int = 0):
        keras.utils.set_random_seed(seed)
        self.vae, self.memory = build_world_model(home)
        self._copy_lstm_weights()

    def _copy_lstm_weights(self) -> None:
        cell = self.memory.lstm.cell
        self._kernel = cell.kernel.numpy()
        self._recurrent_kernel = cell.recurrent_kernel.numpy()
        self._bias = cell.bias.numpy()

    def randomize(self, generator: np.random.Generator, scale: float) -> None:
        """Redraws every weight a rollout uses (the encoder and the LSTM) as Cauchy x `scale`:
        the official code's random agent, whose V and M are new for every episode."""
        for weight in [*self.vae.encoder.weights, *self.memory.lstm.weights]:
            weight.assign(scale * generator.standard_cauchy(weight.shape).astype(np.float32))
        self._copy_lstm_weights()

    @tf.function(input_signature=[tf.TensorSpec([None, *FRAME_SHAPE], tf.uint8)], autograph=False)
    def _encode(self, frames):
        return self.vae.encode(tf.cast(frames, tf.float32) / 255.0)

    def encode(self, frames: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """B x 64 x 64 x 3 uint8 frames -> (mu, logvar), each B x 32 float32 (any B, one trace)."""
        mu, logvar = self._encode(frames)
        return mu.numpy(), logvar.numpy()

    def lstm_step(self, z, action, h, c) -> tuple[np.ndarray, np.ndarray]:
        """One step of the MDN-RNN's LSTM (Keras gate order i, f, c, o) on a batch, in numpy."""
        gates = (
            np.concatenate([z, action], axis=-1) @ self._kernel
            + h @ self._recurrent_kernel
            + self._bias
        )
        input_gate, forget_gate, candidate, output_gate = np.split(gates, 4, axis=-1)
        c = _sigmoid(forget_gate) * c + _sigmoid(input_gate) * np.tanh(candidate)
        h = _sigmoid(output_gate) * np.tanh(c)
        return h.astype(np.float32), c.astype(np.float32)


def world_model_id(home: Path) -> str:
    """A fingerprint of the VAE and MDN-RNN weights in the latest checkpoints of `home` (see
    `require_trained_models`)."""
    return fingerprint(*build_world_model(home))


def fingerprint(vae: VAE, memory: MDNRNN) -> str:
    """A hash of the models' weights once restored, so it does not depend on how a checkpoint
    stores them: a weights-only export of the same checkpoints has the same fingerprint."""
    digest = hashlib.sha256()
    for weight in [*vae.weights, *memory.weights]:
        digest.update(np.asarray(weight).tobytes())
    return digest.hexdigest()[:16]
