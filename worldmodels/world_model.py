"""V and M of a home, as everything above the training stages uses them: built, loaded from
the latest checkpoints, fingerprinted, exported weights-only, and run a batch of frames at a
time by rollouts (`WorldModel`: one encoder call and one numpy memory step per step).

The MDN head is never evaluated in a rollout: the controller reads only the memory's features
(the LSTM's h; with the attentive memory, h and its attention context), or no memory at all
(the V-only agent). The VAE is the home's, continuous or discrete.
"""

from __future__ import annotations

import io
import shutil
import tarfile
import tempfile
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf
from ai_edge_litert.interpreter import Interpreter

from worldmodels import layout
from worldmodels.images import unit_frames
from worldmodels.memory.memory import MDNRNN
from worldmodels.memory.numpy_memory import NumpyMemory
from worldmodels.memory.trained import load_memory
from worldmodels.params import LATENT_READINGS
from worldmodels.records import vae_latent
from worldmodels.training import fingerprint, require_checkpoint
from worldmodels.vision.trained import load_vae
from worldmodels.vision.vae import FRAME_SHAPE, hard_sample


def require_trained_models(home: Path, with_memory: bool = True) -> None:
    """Exits with the command to run when the home has no VAE checkpoint, or no MDN-RNN
    checkpoint `with_memory`; exits too when an MDN-RNN is asked for on a discrete VAE."""
    require_checkpoint(layout.vae_training(home), "vision.train_vae")
    if with_memory:
        if vae_latent(home) == "discrete":
            raise SystemExit(
                f"error: the VAE in {layout.vae_training(home)} is discrete, and this project "
                "has no MDN-RNN on discrete latents; train a V-only controller on it "
                "(train_controller --controller-inputs z)"
            )
        require_checkpoint(layout.memory_training(home), "memory.train_memory")


def build_world_model(home: Path | None, with_memory: bool = True) -> tuple:
    """(VAE, MDN-RNN or None), built; with a `home`, of its kinds and sizes with the weights
    of its latest checkpoints, else the paper's with a fresh random initialisation."""
    return load_vae(home), load_memory(home) if with_memory else None


def frames_posterior(vae, frames: tf.Tensor) -> tuple[tf.Tensor, ...]:
    """B x 64 x 64 x 3 uint8 frames -> the parameters of the VAE's q(z|x)."""
    return vae.posterior(unit_frames(frames))


class CompiledEncoder:
    """A VAE's q(z|x) for uint8 frames, run by LiteRT (XNNPACK, float32, one thread).

    The same parameters as the Keras encoder to float rounding (~1e-6), and the same bits for
    a frame whatever the batch around it. Its weights are those of the VAE when it was built.
    Why: in a rollout engine of 16 envs it takes ~0.15 ms less CPU a step than the TensorFlow
    call (`scripts/benchmark_rollouts.py`: 0.07 ms of it the encoder alone, the rest TensorFlow's
    dispatch and caches), the agent's overhead over the bare environment 33% -> 25%.
    """

    def __init__(self, vae):
        def flat_posterior(frames):
            parts = frames_posterior(vae, frames)
            return tf.concat([tf.reshape(part, [tf.shape(part)[0], -1]) for part in parts], -1)

        signature = [tf.TensorSpec([None, *FRAME_SHAPE], tf.uint8)]
        # The converter saves the object holding the function; given the Keras model itself,
        # it loses the weights (all outputs NaN with Keras 3), so a plain tf.Module holds it.
        holder = tf.Module()
        holder.posterior = tf.function(flat_posterior, input_signature=signature, autograph=False)
        probe = vae.posterior(tf.zeros((1, *FRAME_SHAPE)))
        self._shapes = [tuple(part.shape[1:]) for part in probe]
        self._splits = np.cumsum([int(np.prod(shape)) for shape in self._shapes])[:-1]
        converter = tf.lite.TFLiteConverter.from_concrete_functions(
            [holder.posterior.get_concrete_function()], holder
        )
        # The interpreter reads the weights from this buffer for as long as it runs.
        self._model = converter.convert()
        self._interpreter = Interpreter(model_content=self._model, num_threads=1)
        self._input = self._interpreter.get_input_details()[0]["index"]
        (output,) = self._interpreter.get_output_details()
        self._output = output["index"]
        self._batch = None

    def __call__(self, frames: np.ndarray) -> tuple[np.ndarray, ...]:
        if len(frames) != self._batch:
            self._interpreter.resize_tensor_input(self._input, frames.shape)
            self._interpreter.allocate_tensors()
            self._batch = len(frames)
        self._interpreter.set_tensor(self._input, frames)
        self._interpreter.invoke()
        flat = self._interpreter.get_tensor(self._output)
        return tuple(
            part.reshape(len(frames), *shape)
            for part, shape in zip(np.split(flat, self._splits, axis=1), self._shapes)
        )


class WorldModel:
    """The VAE encoder and the MDN-RNN's memory of one agent, built once per worker process.

    With a `home`, weights come from the latest checkpoints of `vae-training/` and
    `memory-training/`; without, V and M keep their random initialisation from `seed` (the
    paper's random-agent policy). `with_memory` False builds no M: the V-only agent's, whose
    features are empty. `memory` is a built MDN-RNN of the caller's in place of the home's.

    The memory runs in numpy (`NumpyMemory`: `initial_state`, `memory_step`). The encoder runs
    as a `CompiledEncoder`, built at the first `encode`, unless `compile_encoder` is False, as
    it is from the first `randomize` on.
    """

    compile_encoder = True

    def __init__(
        self,
        home: Path | None = None,
        seed: int = 0,
        memory: MDNRNN | None = None,
        with_memory: bool = True,
    ):
        keras.utils.set_random_seed(seed)
        self.vae, self.memory = build_world_model(home, with_memory=with_memory)
        if memory is not None:
            self.memory = memory
        self.code_width = self.vae.code_width
        self.numpy_memory = NumpyMemory(self.memory) if self.memory is not None else None
        self.feature_dim = self.memory.feature_dim if self.memory is not None else 0
        self._compiled_encoder = None

    def initial_state(self, batch: int) -> dict[str, np.ndarray]:
        """The memory's state before the first step of `batch` episodes (`NumpyMemory`)."""
        if self.numpy_memory is None:
            return {"features": np.zeros((batch, 0), np.float32)}
        return self.numpy_memory.initial_state(batch)

    def memory_step(self, z, action, state: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """One step of the memory on (z_t, a_t) for a batch, in numpy: the next state."""
        if self.numpy_memory is None:
            return state
        return self.numpy_memory.step(z, action, state)

    def randomize(self, generator: np.random.Generator, scale: float) -> None:
        """Redraws every weight a rollout uses (the encoder and the LSTM) as Cauchy x `scale`:
        the official code's random agent, whose V and M are new for every episode."""
        for weight in [*self.vae.encoder.weights, *self.memory.lstm.weights]:
            weight.assign(scale * generator.standard_cauchy(weight.shape).astype(np.float32))
        self.numpy_memory = NumpyMemory(self.memory)
        # Weights redrawn every episode would cost a conversion (~0.2 s) each; TensorFlow
        # reads the new ones directly.
        self.compile_encoder = False
        self._compiled_encoder = None

    @tf.function(input_signature=[tf.TensorSpec([None, *FRAME_SHAPE], tf.uint8)], autograph=False)
    def _encode(self, frames):
        return frames_posterior(self.vae, frames)

    def encode(self, frames: np.ndarray) -> tuple[np.ndarray, ...]:
        """B x 64 x 64 x 3 uint8 frames -> the parameters of q(z|x), float32 (any B): (mu,
        logvar), each B x 32; for a discrete VAE (logits B x 32 x 32,)."""
        if not self.compile_encoder:
            return tuple(tensor.numpy() for tensor in self._encode(frames))
        if self._compiled_encoder is None:
            self._compiled_encoder = CompiledEncoder(self.vae)
        return self._compiled_encoder(frames)

    def sample_codes(self, frames: np.ndarray, noises) -> np.ndarray:
        """The z a controller reads, B x code_width float32: a draw from q(z|x) of each frame,
        its randomness from that episode's generator in `noises`. Continuous: mu + sigma * eps;
        discrete: a hard one-hot sample of each categorical (Gumbel-max), flattened."""
        parameters = self.encode(frames)
        if self.vae.latent == "discrete":
            (logits,) = parameters
            uniform = np.stack([noise.uniform(size=logits.shape[1:]) for noise in noises])
            return hard_sample(logits, uniform).reshape(len(frames), -1)
        mu, logvar = parameters
        eps = np.stack([noise.standard_normal(mu.shape[1]) for noise in noises])
        return (mu + np.exp(logvar / 2) * eps).astype(np.float32)

    def mode_codes(self, frames: np.ndarray) -> np.ndarray:
        """The most likely z of each frame under q(z|x), B x code_width float32, no randomness:
        mu; for a discrete VAE the one-hot of each categorical's likeliest class."""
        parameters = self.encode(frames)
        if self.vae.latent == "discrete":
            (logits,) = parameters
            classes = logits.shape[-1]
            return np.eye(classes, dtype=np.float32)[logits.argmax(-1)].reshape(len(frames), -1)
        mu, _ = parameters
        return mu.astype(np.float32)

    def codes(self, frames: np.ndarray, noises, latent: str) -> np.ndarray:
        """The z a controller reads of each frame, by its `latent` reading (`LATENT_READINGS`):
        `sample_codes` or `mode_codes`."""
        if latent == "sample":
            return self.sample_codes(frames, noises)
        if latent == "mode":
            return self.mode_codes(frames)
        raise ValueError(f"latent must be one of {LATENT_READINGS}, not {latent!r}")


def world_model_id(home: Path, with_memory: bool = True) -> str:
    """A fingerprint of the VAE (and MDN-RNN) weights in the latest checkpoints of `home` (see
    `require_trained_models`)."""
    return fingerprint(*build_world_model(home, with_memory))


def write_world_model_weights(home: Path, world_model: WorldModel, destination: Path) -> list[Path]:
    """Writes the weights of `world_model` (the home's latest V and M) as weights-only checkpoints
    named as the home's, with each run's run.json, into `destination` in the home's layout;
    returns the files written."""
    written = []
    for run, model in (
        (layout.vae_training(home), world_model.vae),
        (layout.memory_training(home), world_model.memory),
    ):
        if model is None:  # a V-only agent's
            continue
        name = Path(tf.train.latest_checkpoint(str(run / layout.CHECKPOINTS))).name
        weights = destination / run.name / layout.CHECKPOINTS
        tf.train.Checkpoint(model=model).write(str(weights / name))
        # The index naming the exported checkpoint, so that TensorFlow finds it.
        (weights / "checkpoint").write_text(f'model_checkpoint_path: "{name}"\n')
        written += sorted(weights.iterdir())
        if (run / layout.RUN_FILE).exists():
            shutil.copyfile(run / layout.RUN_FILE, destination / run.name / layout.RUN_FILE)
            written.append(destination / run.name / layout.RUN_FILE)
    return written


def pack_world_model(home: Path, with_memory: bool = True) -> bytes:
    """The weights of the home's latest V (and M) with their run.json files, as the bytes of
    a .tar archive in the home's layout: what a worker on a machine without the home needs
    (`unpack_world_model`)."""
    require_trained_models(home, with_memory)
    world_model = WorldModel(home, with_memory=with_memory)
    packed = io.BytesIO()
    with tempfile.TemporaryDirectory() as staging, tarfile.open(fileobj=packed, mode="w") as tar:
        for path in write_world_model_weights(home, world_model, Path(staging)):
            tar.add(path, arcname=str(path.relative_to(staging)))
    return packed.getvalue()


def unpack_world_model(packed: bytes, destination: Path) -> None:
    """Writes the files of `pack_world_model` into `destination`, which then reads as a home."""
    with tarfile.open(fileobj=io.BytesIO(packed), mode="r") as tar:
        tar.extractall(destination, filter="data")
