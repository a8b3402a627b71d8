"""The MDN-RNN of the paper: an LSTM with a mixture-of-Gaussians head on the next latent.

Per step the input is concat(z_t, a_t) (32 + 3); the head gives, for each of the 32 latent
dimensions independently, a mixture of 5 Gaussians over z_{t+1}. The controller only reads the
LSTM's hidden state h, so rollouts use `step`, which never evaluates the head.
"""

from __future__ import annotations

import math

import keras
import tensorflow as tf

LOG_SQRT_TWO_PI = 0.5 * math.log(2.0 * math.pi)


class MDNRNN(keras.Model):
    """LSTM(lstm_units) -> Dense(latent_dim * num_mixtures * 3): logit pi, mu, log sigma."""

    def __init__(
        self,
        latent_dim: int = 32,
        action_dim: int = 3,
        lstm_units: int = 256,
        num_mixtures: int = 5,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.latent_dim = latent_dim
        self.action_dim = action_dim
        self.lstm_units = lstm_units
        self.num_mixtures = num_mixtures
        self.lstm = keras.layers.LSTM(lstm_units, return_sequences=True, return_state=True)
        self.mdn = keras.layers.Dense(latent_dim * num_mixtures * 3)

    def call(self, inputs: tf.Tensor, initial_state=None):
        """B x T x (latent + action) -> ((logit_pi, mu, log_sigma), (h, c)).

        Mixture parameters are B x T x latent_dim x num_mixtures; h and c are the final
        B x lstm_units states.
        """
        outputs, h, c = self.lstm(inputs, initial_state=initial_state)
        return self.mixture(outputs), (h, c)

    def mixture(self, hidden: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
        """LSTM outputs [..., lstm_units] -> (logit_pi, mu, log_sigma), each [..., 32, 5]."""
        params = self.mdn(hidden)
        shape = tf.concat([tf.shape(params)[:-1], [self.latent_dim, self.num_mixtures, 3]], 0)
        logit_pi, mu, log_sigma = tf.unstack(tf.reshape(params, shape), axis=-1)
        return logit_pi, mu, log_sigma

    def initial_state(self, batch_size: int) -> tuple[tf.Tensor, tf.Tensor]:
        """Zero (h, c), each batch_size x lstm_units."""
        zeros = tf.zeros((batch_size, self.lstm_units))
        return zeros, zeros

    def step(self, z: tf.Tensor, action: tf.Tensor, state) -> tuple[tf.Tensor, tf.Tensor]:
        """One LSTM step on B x latent and B x action: (h, c) -> new (h, c). No head."""
        _, (h, c) = self.lstm.cell(tf.concat([z, action], axis=-1), list(state))
        return h, c


def mdn_loss(logit_pi, mu, log_sigma, target, mask=None) -> tf.Tensor:
    """Mean negative log-likelihood of `target` under the per-dimension Gaussian mixtures.

    logit_pi, mu, log_sigma: [..., D, K]; target: [..., D]; mask (optional): [...], weights of
    the steps (0 for padding). Computed in log space — log_softmax over mixtures, logsumexp of
    log pi + log N(target | mu, exp(log_sigma)) — so it stays finite for very peaked mixtures;
    sigma is not bounded below. Averaged over dimensions and the (masked) leading axes.
    """
    log_pi = tf.nn.log_softmax(logit_pi, axis=-1)
    standardized = (target[..., None] - mu) * tf.exp(-log_sigma)
    log_normal = -0.5 * tf.square(standardized) - log_sigma - LOG_SQRT_TWO_PI
    nll = -tf.reduce_logsumexp(log_pi + log_normal, axis=-1)
    if mask is None:
        return tf.reduce_mean(nll)
    weights = tf.broadcast_to(tf.cast(mask, nll.dtype)[..., None], tf.shape(nll))
    return tf.reduce_sum(nll * weights) / tf.maximum(tf.reduce_sum(weights), 1.0)


def sample_next_latent(logit_pi, mu, log_sigma, temperature: float = 1.0, seed=None):
    """Draws z' from the mixtures at `temperature`: logits / tau, sigma * sqrt(tau).

    Inputs [..., D, K]; returns [..., D]. Each dimension picks its own mixture component.
    """
    num_mixtures = tf.shape(logit_pi)[-1]
    flat_logits = tf.reshape(logit_pi / temperature, [-1, num_mixtures])
    component = tf.random.categorical(flat_logits, 1, seed=seed)[:, 0]
    chosen = tf.one_hot(tf.reshape(component, tf.shape(logit_pi)[:-1]), num_mixtures)
    chosen_mu = tf.reduce_sum(chosen * mu, axis=-1)
    chosen_sigma = tf.exp(tf.reduce_sum(chosen * log_sigma, axis=-1)) * math.sqrt(temperature)
    return chosen_mu + chosen_sigma * tf.random.normal(tf.shape(chosen_mu), seed=seed)
