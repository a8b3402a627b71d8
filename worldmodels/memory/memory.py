"""The MDN-RNN of the paper: an LSTM with a mixture-of-Gaussians head on the next latent, and
its attentive variant.

Per step the input is concat(z_t, a_t) (32 + 3); the head gives, for each of the 32 latent
dimensions independently, a mixture of 5 Gaussians over z_{t+1}. The head reads the memory's
`features` at t: the LSTM's output h_t (`MDNRNN`), or h_t and an attention context over the
last W outputs (`AttentiveMDNRNN`). The controller reads the same features, so rollouts step
the memory without evaluating the head (worldmodels/control/agent.py).
"""

from __future__ import annotations

import math

import keras
import tensorflow as tf

from worldmodels.params import MEMORIES

LOG_SQRT_TWO_PI = 0.5 * math.log(2.0 * math.pi)


class MDNRNN(keras.Model):
    """LSTM(lstm_units) -> Dense(latent_dim * num_mixtures * 3): logit pi, mu, log sigma.

    With `reward_done_heads`, a head on the same features also predicts the reward r_t and the
    logit of done_t of the step whose input was (z_t, a_t): what a dream needs besides z_{t+1}.
    One linear layer; or, with `reward_done_ensemble` K > 1, K small networks
    (`RewardDoneEnsemble`) whose disagreement marks where M has not seen the driving.
    """

    kind = "lstm"

    def __init__(
        self,
        latent_dim: int = 32,
        action_dim: int = 3,
        lstm_units: int = 256,
        num_mixtures: int = 5,
        reward_done_heads: bool = False,
        reward_done_ensemble: int = 1,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.latent_dim = latent_dim
        self.action_dim = action_dim
        self.lstm_units = lstm_units
        self.num_mixtures = num_mixtures
        self.reward_done_heads = reward_done_heads
        self.reward_done_ensemble = reward_done_ensemble
        self.lstm = keras.layers.LSTM(lstm_units, return_sequences=True, return_state=True)
        self.mdn = keras.layers.Dense(latent_dim * num_mixtures * 3)
        self.reward_done = None
        if reward_done_heads:
            if reward_done_ensemble > 1:
                self.reward_done = RewardDoneEnsemble(reward_done_ensemble, name="reward_done")
            else:
                self.reward_done = keras.layers.Dense(2, name="reward_done")
            self.reward_done.build((None, self.feature_dim))

    def call(self, inputs: tf.Tensor, initial_state=None):
        """B x T x (latent + action) -> ((logit_pi, mu, log_sigma), (h, c)).

        Mixture parameters are B x T x latent_dim x num_mixtures; h and c are the final
        B x lstm_units states.
        """
        features, state = self.sequence_features(inputs, initial_state)
        return self.mixture(features), state

    def sequence_features(self, inputs: tf.Tensor, initial_state=None):
        """B x T x (latent + action) -> (features B x T x feature_dim, final (h, c))."""
        outputs, h, c = self.lstm(inputs, initial_state=initial_state)
        return self.features(outputs), (h, c)

    def predict_reward_done(self, features: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        """Features [..., feature_dim] -> (r_t [..., K], logit of done_t [..., K]), one column
        per head of the ensemble (K = 1 without one); needs the heads."""
        if self.reward_done is None:
            raise ValueError(
                "this MDN-RNN has no reward and done heads (train_memory --reward-done-heads)"
            )
        predicted = self.reward_done(features)
        if self.reward_done_ensemble == 1:
            predicted = predicted[..., None, :]  # the linear head: an ensemble of one
        return predicted[..., 0], predicted[..., 1]

    def freeze_all_but_heads(self) -> None:
        """Leaves the reward and done heads' weights the only trainable ones: the features, the
        mixture and so what a controller reads stay as they are."""
        heads = {id(variable) for variable in self.reward_done.weights}
        for variable in self.weights:
            variable.trainable = id(variable) in heads

    @property
    def feature_dim(self) -> int:
        """Width of the features the head and the controller read at each step."""
        return self.lstm_units

    def features(self, outputs: tf.Tensor) -> tf.Tensor:
        """LSTM outputs B x T x lstm_units -> the head's features at every step: h_t itself."""
        return outputs

    def mixture(self, hidden: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
        """Features [..., feature_dim] -> (logit_pi, mu, log_sigma), each [..., 32, 5]."""
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


# Small enough to cost little beside the LSTM; a hidden layer at all, because linear heads on
# the same features and data converge to one least-squares solution and never disagree.
ENSEMBLE_HIDDEN_UNITS = 64


class RewardDoneEnsemble(keras.layers.Layer):
    """K networks on the same features, each Dense(64, tanh) -> Dense(2) (reward, done logit)
    with its own initial weights: trained on the same data they agree where the data is and
    extrapolate apart away from it (deep ensembles, Lakshminarayanan et al., 2017). Maps
    [..., F] -> [..., K, 2]."""

    def __init__(self, heads: int, **kwargs):
        super().__init__(**kwargs)
        self.heads = heads

    def build(self, input_shape):
        features, units = input_shape[-1], ENSEMBLE_HIDDEN_UNITS
        init = keras.initializers.GlorotUniform
        # Each head's kernels drawn on their own, as K separate Dense layers would be.
        self.hidden_kernel = self.add_weight(
            shape=(self.heads, features, units), initializer=init(), name="hidden_kernel"
        )
        self.hidden_bias = self.add_weight(
            shape=(self.heads, units), initializer="zeros", name="hidden_bias"
        )
        self.output_kernel = self.add_weight(
            shape=(self.heads, units, 2), initializer=init(), name="output_kernel"
        )
        self.output_bias = self.add_weight(
            shape=(self.heads, 2), initializer="zeros", name="output_bias"
        )

    def call(self, features: tf.Tensor) -> tf.Tensor:
        # The leading dimensions flattened into one, n: over an ellipsis, TensorFlow's einsum
        # gradient builds the [..., K x 64, F] product before summing it (32 GB at a batch of
        # 100 episodes of 1000 steps); over n it is a matrix product.
        flat = tf.reshape(features, [-1, tf.shape(features)[-1]])
        hidden = tf.tanh(tf.einsum("nf,kfu->nku", flat, self.hidden_kernel) + self.hidden_bias)
        outputs = tf.einsum("nku,kuo->nko", hidden, self.output_kernel) + self.output_bias
        return tf.reshape(outputs, tf.concat([tf.shape(features)[:-1], [self.heads, 2]], 0))


class AttentiveMDNRNN(MDNRNN):
    """The MDN-RNN with causal soft attention over the LSTM's last `window` outputs.

    Additive attention as in "Show, Attend and Tell" (Xu et al., 2015): at step t, with h_t
    the query and the outputs h_{t-W+1}, ..., h_t as keys and values,
    e_{t,i} = v . tanh(W_q h_t + W_k h_i + b), alpha_t = softmax_i(e_t), context_t =
    sum_i alpha_{t,i} h_i; the head reads concat(h_t, context_t). Outputs before the start of
    the sequence do not exist and get no weight. Training runs it banded (`banded_attention`):
    W shifted copies of the sequence, never a T x T matrix.
    """

    kind = "attention"

    def __init__(self, *args, window: int = 32, attention_units: int = 64, **kwargs):
        super().__init__(*args, **kwargs)
        self.window = window
        self.attention_units = attention_units
        self.query = keras.layers.Dense(attention_units, use_bias=False, name="query")
        self.key = keras.layers.Dense(attention_units, name="key")
        self.score = self.add_weight(
            shape=(attention_units,), initializer="glorot_uniform", name="score"
        )

    @property
    def feature_dim(self) -> int:
        return 2 * self.lstm_units

    def features(self, outputs: tf.Tensor) -> tf.Tensor:
        context = banded_attention(
            outputs,
            self.query(outputs),
            self.key(outputs),
            self.score,
            self.window,
        )
        return tf.concat([outputs, context], axis=-1)


def banded_attention(values, queries, keys, score_vector, window: int) -> tf.Tensor:
    """Context vectors B x T x H of causal additive attention over the last `window` steps.

    values B x T x H; queries, keys B x T x A; score_vector A. Step t attends to steps
    t - window + 1 .. t that exist (>= 0). Costs O(T x window) time and memory.
    """
    length = tf.shape(values)[1]
    positions = tf.range(length)

    def shifted(tensor, offset):  # tensor at t - offset, zeros before the start
        return tf.pad(tensor, [[0, 0], [offset, 0], [0, 0]])[:, :length]

    scores = []
    for offset in range(window):
        energy = tf.reduce_sum(tf.tanh(queries + shifted(keys, offset)) * score_vector, -1)
        scores.append(tf.where(positions >= offset, energy, -math.inf))
    weights = tf.nn.softmax(tf.stack(scores, axis=-1), axis=-1)  # B x T x window
    return tf.add_n(
        [weights[..., offset, None] * shifted(values, offset) for offset in range(window)]
    )


def build_memory(memory: str = "lstm", attention_window: int = 32, **sizes) -> MDNRNN:
    """The `memory` of that kind ("lstm" or "attention", attending to `attention_window`
    outputs); the names are those of the settings train_memory records."""
    if memory == "lstm":
        return MDNRNN(**sizes)
    if memory == "attention":
        return AttentiveMDNRNN(window=attention_window, **sizes)
    raise ValueError(f"memory must be one of {MEMORIES}, got {memory!r}")


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


def reward_done_losses(
    reward_predicted, done_logit, reward, done, mask, overprediction_weight: float = 1.0
) -> dict:
    """`reward_loss`: mean squared error of the predicted rewards, each error where the
    prediction exceeds the reward weighted by `overprediction_weight` (1: the plain squared
    error); `done_loss`: mean sigmoid cross-entropy of the done logits against the done flags;
    both over the steps where `mask` is 1 and the heads (predictions [..., K], the rest [...]):
    each head of an ensemble learns the same targets on its own."""
    reward, done = reward[..., None], done[..., None]
    heads = tf.cast(tf.shape(reward_predicted)[-1], reward_predicted.dtype)
    mask = tf.cast(mask, reward_predicted.dtype)[..., None]
    steps = tf.maximum(tf.reduce_sum(mask), 1.0) * heads
    error = reward_predicted - reward
    squared_error = tf.square(error) * tf.where(error > 0, overprediction_weight, 1.0)
    cross_entropy = tf.nn.sigmoid_cross_entropy_with_logits(
        labels=tf.broadcast_to(tf.cast(done, done_logit.dtype), tf.shape(done_logit)),
        logits=done_logit,
    )
    return {
        "reward_loss": tf.reduce_sum(squared_error * mask) / steps,
        "done_loss": tf.reduce_sum(cross_entropy * mask) / steps,
    }


def sample_next_latent(
    logit_pi, mu, log_sigma, temperature: float = 1.0, seed=None, generator=None
):
    """Draws z' from the mixtures at `temperature`: logits / tau, sigma * sqrt(tau).

    Inputs [..., D, K]; returns [..., D]. Each dimension picks its own mixture component.
    Randomness from `generator` (a tf.random.Generator, reproducible) when given, else from
    TensorFlow's global stream with op `seed`.
    """
    num_mixtures = tf.shape(logit_pi)[-1]
    flat_logits = tf.reshape(logit_pi / temperature, [-1, num_mixtures])
    if generator is not None:
        draw = generator.make_seeds(1)[:, 0]
        component = tf.random.stateless_categorical(flat_logits, 1, seed=draw)[:, 0]
    else:
        component = tf.random.categorical(flat_logits, 1, seed=seed)[:, 0]
    chosen = tf.one_hot(tf.reshape(component, tf.shape(logit_pi)[:-1]), num_mixtures)
    chosen_mu = tf.reduce_sum(chosen * mu, axis=-1)
    chosen_sigma = tf.exp(tf.reduce_sum(chosen * log_sigma, axis=-1)) * math.sqrt(temperature)
    if generator is not None:
        noise = generator.normal(tf.shape(chosen_mu))
    else:
        noise = tf.random.normal(tf.shape(chosen_mu), seed=seed)
    return chosen_mu + chosen_sigma * noise
