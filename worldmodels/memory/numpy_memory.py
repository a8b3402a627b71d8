"""The MDN-RNN's step in numpy, for rollouts and dreams: one batch of episodes, one step.

A Keras call per environment step costs more than the step's arithmetic, so rollouts and dream
episodes run M from copies of its weights. The memory's state for a batch of episodes is a
dict of numpy arrays with the episode on the first axis (`initial_state`); `step` advances it,
and its "features" are what a controller reads: h_t, and with the attentive memory the context
over the last W outputs too, both from the steps before t (zeros at t = 0).
"""

from __future__ import annotations

import numpy as np

from worldmodels.memory.memory import MDNRNN


def sigmoid(x: np.ndarray) -> np.ndarray:
    return 0.5 * (np.tanh(0.5 * x) + 1.0)


class NumpyMemory:
    """The weights of one MDN-RNN, copied when built (rebuild it after changing them)."""

    def __init__(self, memory: MDNRNN):
        self.kind = memory.kind
        self.units = memory.lstm_units
        self.feature_dim = memory.feature_dim
        cell = memory.lstm.cell
        self._kernel = cell.kernel.numpy()
        self._recurrent_kernel = cell.recurrent_kernel.numpy()
        self._bias = cell.bias.numpy()
        if self.kind == "attention":
            self.window = memory.window
            self._query = memory.query.kernel.numpy()
            self._key = memory.key.kernel.numpy()
            self._key_bias = memory.key.bias.numpy()
            self._score = memory.score.numpy()
            self._attention_units = memory.attention_units
        self._mixture_kernel, self._mixture_bias = (w.numpy() for w in memory.mdn.weights)
        self._mixture_shape = (memory.latent_dim, memory.num_mixtures, 3)
        self.reward_done_heads = memory.reward_done_heads
        self.reward_done_ensemble = memory.reward_done_ensemble
        if self.reward_done_heads:
            self._heads = [w.numpy() for w in memory.reward_done.weights]

    def initial_state(self, batch: int) -> dict[str, np.ndarray]:
        """The state before the first step of `batch` episodes: all zeros."""
        state = {
            "h": np.zeros((batch, self.units), np.float32),
            "c": np.zeros((batch, self.units), np.float32),
            "features": np.zeros((batch, self.feature_dim), np.float32),
        }
        if self.kind == "attention":
            state["outputs"] = np.zeros((batch, self.window, self.units), np.float32)
            state["keys"] = np.zeros((batch, self.window, self._attention_units), np.float32)
            state["steps"] = np.zeros(batch, np.int64)
        return state

    def step(self, z, action, state: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """One step on (z_t, a_t) for a batch: the next state."""
        h, c = self.lstm_step(z, action, state["h"], state["c"])
        if self.kind == "lstm":
            return {"h": h, "c": c, "features": h}
        # The last W outputs, oldest first, and their keys; entries before the episode's
        # first step are zeros that the mask leaves out.
        outputs = np.concatenate([state["outputs"][:, 1:], h[:, None]], axis=1)
        keys = np.concatenate(
            [state["keys"][:, 1:], (h @ self._key + self._key_bias)[:, None]], axis=1
        )
        steps = state["steps"] + 1
        energy = np.tanh((h @ self._query)[:, None] + keys) @ self._score
        window = outputs.shape[1]
        exists = np.arange(window)[None] >= window - steps[:, None]
        energy = np.where(exists, energy, -np.inf)
        weights = np.exp(energy - energy.max(axis=1, keepdims=True))
        weights /= weights.sum(axis=1, keepdims=True)
        context = np.einsum("bw,bwh->bh", weights, outputs)
        features = np.concatenate([h, context], axis=-1).astype(np.float32)
        return {
            "h": h,
            "c": c,
            "features": features,
            "outputs": outputs,
            "keys": keys,
            "steps": steps,
        }

    def lstm_step(self, z, action, h, c) -> tuple[np.ndarray, np.ndarray]:
        """One step of the LSTM (Keras gate order i, f, c, o) on a batch."""
        gates = (
            np.concatenate([z, action], axis=-1) @ self._kernel
            + h @ self._recurrent_kernel
            + self._bias
        )
        input_gate, forget_gate, candidate, output_gate = np.split(gates, 4, axis=-1)
        c = sigmoid(forget_gate) * c + sigmoid(input_gate) * np.tanh(candidate)
        h = sigmoid(output_gate) * np.tanh(c)
        return h.astype(np.float32), c.astype(np.float32)

    def mixture(self, features: np.ndarray) -> tuple[np.ndarray, ...]:
        """M's mixture for z_{t+1} on features [B, F]: (logit_pi, mu, log_sigma) [B, D, K]."""
        mixture = (features @ self._mixture_kernel + self._mixture_bias).reshape(
            len(features), *self._mixture_shape
        )
        return mixture[..., 0], mixture[..., 1], mixture[..., 2]

    def reward_done(self, features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """M's reward and done heads on features [B, F]: (reward [B, K], logit of done [B, K]),
        a column per head of the ensemble (one without)."""
        if self.reward_done_ensemble == 1:
            kernel, bias = self._heads
            heads = (features @ kernel + bias)[:, None]
        else:
            hidden_kernel, hidden_bias, output_kernel, output_bias = self._heads
            hidden = np.tanh(np.einsum("bf,kfu->bku", features, hidden_kernel) + hidden_bias)
            heads = np.einsum("bku,kuo->bko", hidden, output_kernel) + output_bias
        return heads[..., 0], heads[..., 1]


def mixture_draws(
    generator: np.random.Generator, dims: int, mixtures: int
) -> tuple[np.ndarray, np.ndarray]:
    """The randomness of one draw from D mixtures of K components, taken from `generator` in a
    fixed order: (uniform [D, K] for the component, standard normal [D] for the value)."""
    return generator.uniform(size=(dims, mixtures)), generator.standard_normal(dims)


def sample_mixture(
    logit_pi: np.ndarray,
    mu: np.ndarray,
    log_sigma: np.ndarray,
    temperature: float,
    uniform: np.ndarray,
    noise: np.ndarray,
) -> np.ndarray:
    """Draws of Gaussian mixtures at `temperature` (inputs [..., D, K], broadcast with
    `uniform` [..., D, K]; `noise` [..., D]: from `mixture_draws`): a component
    k ~ softmax(logit_pi / tau) (the Gumbel-max trick), then
    mu_k + exp(log_sigma_k) * sqrt(tau) * noise. Returns [..., D] float32."""
    logit_pi, mu, log_sigma, uniform = np.broadcast_arrays(logit_pi, mu, log_sigma, uniform)
    gumbel = -np.log(-np.log(np.clip(uniform, 1e-20, 1.0)))
    component = np.argmax(logit_pi / temperature + gumbel, axis=-1)[..., None]
    chosen_mu = np.take_along_axis(mu, component, axis=-1)[..., 0]
    sigma = np.exp(np.take_along_axis(log_sigma, component, axis=-1)[..., 0])
    return (chosen_mu + sigma * np.sqrt(temperature) * noise).astype(np.float32)
