"""The convolutional VAE of the paper (Ha & Schmidhuber, 2018, appendix A.1), and its discrete
variant.

Frames are 64x64x3 float32 in [0, 1]. `VAE`: a 32-dimensional Gaussian latent, ~4.35 M
parameters. `DiscreteVAE`: the same encoder and decoder around 32 categorical variables of 32
classes, relaxed with the Gumbel-softmax in training (the project's discrete World Models
source document).
"""

from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf

from worldmodels.params import LATENTS

FRAME_SHAPE = (64, 64, 3)


def conv_encoder(outputs: int) -> keras.Sequential:
    """4 stride-2 convolutions (32, 64, 128, 256 filters, kernel 4, ReLU), flatten, then a
    linear layer to `outputs`."""
    conv = dict(kernel_size=4, strides=2, activation="relu", padding="valid")
    return keras.Sequential(
        [
            keras.Input(FRAME_SHAPE),
            keras.layers.Conv2D(32, **conv),
            keras.layers.Conv2D(64, **conv),
            keras.layers.Conv2D(128, **conv),
            keras.layers.Conv2D(256, **conv),
            keras.layers.Flatten(),
            keras.layers.Dense(outputs),
        ],
        name="encoder",
    )


def deconv_decoder(code_width: int) -> keras.Sequential:
    """A code of `code_width` -> 64 x 64 x 3 in [0, 1] through 4 transposed convolutions."""
    return keras.Sequential(
        [
            keras.Input((code_width,)),
            # Linear, as the official code's `dec_fc`: the first transposed convolution's
            # ReLU is the first nonlinearity.
            keras.layers.Dense(1024),
            keras.layers.Reshape((1, 1, 1024)),
            keras.layers.Conv2DTranspose(128, 5, strides=2, activation="relu"),
            keras.layers.Conv2DTranspose(64, 5, strides=2, activation="relu"),
            keras.layers.Conv2DTranspose(32, 6, strides=2, activation="relu"),
            keras.layers.Conv2DTranspose(3, 6, strides=2, activation="sigmoid"),
        ],
        name="decoder",
    )


class VAE(keras.Model):
    """Encoder: 4 stride-2 convolutions -> (mu, logvar); decoder: 4 transposed convolutions."""

    latent = "continuous"

    def __init__(self, latent_dim: int = 32, kl_tolerance: float = 0.5, **kwargs):
        super().__init__(**kwargs)
        self.latent_dim = latent_dim
        self.kl_tolerance = kl_tolerance
        self.encoder = conv_encoder(2 * latent_dim)
        self.decoder = deconv_decoder(latent_dim)

    @property
    def code_width(self) -> int:
        """Width of the z a controller reads."""
        return self.latent_dim

    def posterior(self, frames: tf.Tensor) -> tuple[tf.Tensor, ...]:
        """The parameters of q(z|x): (mu, logvar), each B x latent_dim."""
        return self.encode(frames)

    def reconstruct(self, frames: tf.Tensor) -> tf.Tensor:
        """Frames decoded from the mode of q(z|x): mu."""
        return self.decode(self.encode(frames)[0])

    def prior_codes(self, count: int, seed: int) -> tf.Tensor:
        """`count` draws of z from the prior N(0, I)."""
        return tf.random.stateless_normal((count, self.latent_dim), seed=[seed, 0])

    def encode(self, frames: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        """B x 64 x 64 x 3 in [0, 1] -> (mu, logvar), each B x latent_dim."""
        mu, logvar = tf.split(self.encoder(frames), 2, axis=-1)
        return mu, logvar

    def decode(self, latent: tf.Tensor) -> tf.Tensor:
        """B x latent_dim -> B x 64 x 64 x 3 in [0, 1]."""
        return self.decoder(latent)

    def call(self, frames: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
        """(reconstruction, mu, logvar), decoding a reparameterised sample of z."""
        mu, logvar = self.encode(frames)
        return self.decode(sample_latent(mu, logvar)), mu, logvar

    def loss_terms(self, frames: tf.Tensor) -> dict[str, tf.Tensor]:
        """The training objective on a batch, and its parts; see `vae_loss`."""
        reconstruction, mu, logvar = self(frames)
        return vae_loss(frames, reconstruction, mu, logvar, self.kl_tolerance * self.latent_dim)


class DiscreteVAE(keras.Model):
    """The same encoder and decoder around `categoricals` categorical variables of `classes`
    classes: the encoder gives their logits, the decoder reads a (relaxed) one-hot code.

    Training decodes a Gumbel-softmax sample at `temperature`; the loss is the summed squared
    pixel error plus `kl_weight` x KL(q(z|x) || uniform), summed over the variables. Both
    weights are variables, annealed by the training command between epochs. At inference the
    code is a hard one-hot sample (`hard_sample`).
    """

    latent = "discrete"

    def __init__(self, categoricals: int = 32, classes: int = 32, **kwargs):
        super().__init__(**kwargs)
        self.categoricals = categoricals
        self.classes = classes
        self.encoder = conv_encoder(categoricals * classes)
        self.decoder = deconv_decoder(categoricals * classes)
        self.temperature = tf.Variable(1.0, trainable=False, name="temperature")
        self.kl_weight = tf.Variable(1.0, trainable=False, name="kl_weight")

    @property
    def code_width(self) -> int:
        return self.categoricals * self.classes

    def posterior(self, frames: tf.Tensor) -> tuple[tf.Tensor, ...]:
        """The parameters of q(z|x): (logits B x categoricals x classes,)."""
        return (self.logits(frames),)

    def reconstruct(self, frames: tf.Tensor) -> tf.Tensor:
        """Frames decoded from the mode of q(z|x): each variable's most likely class."""
        return self.decode(tf.one_hot(tf.argmax(self.logits(frames), -1), self.classes))

    def prior_codes(self, count: int, seed: int) -> tf.Tensor:
        """`count` draws of z from the uniform prior, one-hot."""
        uniform_logits = tf.zeros((count * self.categoricals, self.classes))
        classes = tf.random.stateless_categorical(uniform_logits, 1, seed=[seed, 0])
        return tf.reshape(tf.one_hot(classes[:, 0], self.classes), [count, -1])

    def logits(self, frames: tf.Tensor) -> tf.Tensor:
        """B x 64 x 64 x 3 in [0, 1] -> B x categoricals x classes logits of q(z|x)."""
        return tf.reshape(self.encoder(frames), [-1, self.categoricals, self.classes])

    def decode(self, code: tf.Tensor) -> tf.Tensor:
        """B x categoricals x classes (or flat) one-hot or relaxed code -> B x 64 x 64 x 3."""
        return self.decoder(tf.reshape(code, [-1, self.code_width]))

    def call(self, frames: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        """(reconstruction, logits), decoding a Gumbel-softmax sample at `temperature`."""
        logits = self.logits(frames)
        return self.decode(gumbel_softmax_sample(logits, self.temperature)), logits

    def loss_terms(self, frames: tf.Tensor) -> dict[str, tf.Tensor]:
        """`loss` (what is minimised), `reconstruction_loss`, `kl_loss` (weighted) and `kl`."""
        reconstruction, logits = self(frames)
        squared_error = tf.reduce_sum(tf.square(frames - reconstruction), axis=[1, 2, 3])
        reconstruction_loss = tf.reduce_mean(squared_error)
        kl = tf.reduce_mean(categorical_kl_to_uniform(logits))
        return {
            "loss": reconstruction_loss + self.kl_weight * kl,
            "reconstruction_loss": reconstruction_loss,
            "kl_loss": self.kl_weight * kl,
            "kl": kl,
            "temperature": tf.identity(self.temperature),
            "kl_weight": tf.identity(self.kl_weight),
        }


def gumbel_softmax_sample(logits: tf.Tensor, temperature, seed=None) -> tf.Tensor:
    """softmax((logits + g) / temperature), g ~ Gumbel(0, 1): a relaxed one-hot sample of each
    categorical variable (the last axis), differentiable in the logits; one-hot as
    temperature -> 0."""
    uniform = tf.random.uniform(tf.shape(logits), minval=1e-20, maxval=1.0, seed=seed)
    return tf.nn.softmax((logits - tf.math.log(-tf.math.log(uniform))) / temperature, axis=-1)


def hard_sample(logits: np.ndarray, uniform: np.ndarray) -> np.ndarray:
    """One-hot samples of the categoricals of `logits` [..., classes] (the Gumbel-max trick
    on `uniform` noise of the same shape): exactly distributed as softmax(logits)."""
    gumbel = -np.log(-np.log(np.clip(uniform, 1e-20, 1.0)))
    choice = np.argmax(logits + gumbel, axis=-1)
    return np.eye(logits.shape[-1], dtype=np.float32)[choice]


def categorical_kl_to_uniform(logits: tf.Tensor) -> tf.Tensor:
    """KL(softmax(logits) || uniform) in nats, summed over the variables: per variable
    sum_k q_k (log q_k + log K). Logits [..., variables, classes] -> [...]."""
    log_q = tf.nn.log_softmax(logits, axis=-1)
    classes = tf.cast(tf.shape(logits)[-1], logits.dtype)
    per_variable = tf.reduce_sum(tf.exp(log_q) * (log_q + tf.math.log(classes)), axis=-1)
    return tf.reduce_sum(per_variable, axis=-1)


def annealed(start: float, end: float, half_life: float, epoch: int) -> float:
    """An exponential schedule: `start` at epoch 0, its distance to `end` halving every
    `half_life` epochs (the discrete source's tau 5 -> 0.1 and alpha 2 -> 0.01)."""
    return end + (start - end) * 0.5 ** (epoch / half_life)


def build_vae(latent: str = "continuous", kl_tolerance: float = 0.5) -> keras.Model:
    """The VAE of `latent` type ("continuous" or "discrete"), built."""
    if latent == "continuous":
        vae = VAE(kl_tolerance=kl_tolerance)
    elif latent == "discrete":
        vae = DiscreteVAE()
    else:
        raise ValueError(f"latent must be one of {LATENTS}, got {latent!r}")
    vae(tf.zeros((1, *FRAME_SHAPE)))
    return vae


def sample_latent(mu: tf.Tensor, logvar: tf.Tensor, seed=None) -> tf.Tensor:
    """z = mu + exp(logvar / 2) * eps, eps ~ N(0, I): the reparameterisation trick."""
    return mu + tf.exp(logvar / 2) * tf.random.normal(tf.shape(mu), seed=seed)


def kl_divergence(mu: tf.Tensor, logvar: tf.Tensor) -> tf.Tensor:
    """KL(N(mu, exp(logvar)) || N(0, I)) in nats, summed over the last axis."""
    return -0.5 * tf.reduce_sum(1.0 + logvar - tf.square(mu) - tf.exp(logvar), axis=-1)


# Burda et al. (2016)'s threshold on Cov_x(E_q[z_u]): a latent dimension whose mean moves less
# than this over the data carries almost nothing, and its sampled z is mostly N(0, 1) noise.
ACTIVITY_THRESHOLD = 0.01


def latent_activity(mu_batches) -> np.ndarray:
    """The variance over all frames of each dimension of mu, from batches [B, D] of it: Burda
    et al. (2016)'s activity of each latent dimension (float64, D)."""
    count, total, squares = 0, 0.0, 0.0
    for mu in mu_batches:
        mu = np.asarray(mu, np.float64)
        count += len(mu)
        total = total + mu.sum(axis=0)
        squares = squares + np.square(mu).sum(axis=0)
    if count == 0:
        raise ValueError("latent activity needs at least one frame")
    mean = total / count
    return np.maximum(squares / count - np.square(mean), 0.0)


def vae_loss(frames, reconstruction, mu, logvar, kl_floor: float) -> dict[str, tf.Tensor]:
    """Per sample: summed squared pixel error + max(KL, kl_floor); both averaged over the batch.

    The floor ("free bits", kl_floor = kl_tolerance * latent_dim = 16 nats) is applied to each
    sample's KL before anything is differentiated, so a sample whose KL is below the floor
    sends no gradient into it. Returns `loss` (what is minimised), `reconstruction_loss`,
    `kl_loss` (floored, as optimised) and `kl` (unfloored, for logging).
    """
    squared_error = tf.reduce_sum(tf.square(frames - reconstruction), axis=[1, 2, 3])
    kl = kl_divergence(mu, logvar)
    reconstruction_loss = tf.reduce_mean(squared_error)
    kl_loss = tf.reduce_mean(tf.maximum(kl, kl_floor))
    return {
        "loss": reconstruction_loss + kl_loss,
        "reconstruction_loss": reconstruction_loss,
        "kl_loss": kl_loss,
        "kl": tf.reduce_mean(kl),
    }
