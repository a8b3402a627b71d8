"""The convolutional VAE of the paper (Ha & Schmidhuber, 2018, appendix A.1).

Frames are 64x64x3 float32 in [0, 1]. ~4.35 M parameters.
"""

from __future__ import annotations

import keras
import tensorflow as tf

FRAME_SHAPE = (64, 64, 3)


class VAE(keras.Model):
    """Encoder: 4 stride-2 convolutions -> (mu, logvar); decoder: 4 transposed convolutions."""

    def __init__(self, latent_dim: int = 32, kl_tolerance: float = 0.5, **kwargs):
        super().__init__(**kwargs)
        self.latent_dim = latent_dim
        self.kl_tolerance = kl_tolerance
        conv = dict(kernel_size=4, strides=2, activation="relu", padding="valid")
        self.encoder = keras.Sequential(
            [
                keras.Input(FRAME_SHAPE),
                keras.layers.Conv2D(32, **conv),
                keras.layers.Conv2D(64, **conv),
                keras.layers.Conv2D(128, **conv),
                keras.layers.Conv2D(256, **conv),
                keras.layers.Flatten(),
                keras.layers.Dense(2 * latent_dim),
            ],
            name="encoder",
        )
        self.decoder = keras.Sequential(
            [
                keras.Input((latent_dim,)),
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


def sample_latent(mu: tf.Tensor, logvar: tf.Tensor, seed=None) -> tf.Tensor:
    """z = mu + exp(logvar / 2) * eps, eps ~ N(0, I): the reparameterisation trick."""
    return mu + tf.exp(logvar / 2) * tf.random.normal(tf.shape(mu), seed=seed)


def kl_divergence(mu: tf.Tensor, logvar: tf.Tensor) -> tf.Tensor:
    """KL(N(mu, exp(logvar)) || N(0, I)) in nats, summed over the last axis."""
    return -0.5 * tf.reduce_sum(1.0 + logvar - tf.square(mu) - tf.exp(logvar), axis=-1)


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
