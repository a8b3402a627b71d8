import math

import keras
import numpy as np
import pytest
import tensorflow as tf

from worldmodels.memory.memory import MDNRNN, mdn_loss, reward_done_losses, sample_next_latent


def reference_nll(logit_pi, mu, log_sigma, target):
    """Mean NLL in float64 numpy: log-sum-exp over mixtures of log pi + log N."""
    logit_pi, mu, log_sigma = (np.float64(a) for a in (logit_pi, mu, log_sigma))
    log_pi = logit_pi - np.logaddexp.reduce(logit_pi, axis=-1, keepdims=True)
    sigma = np.exp(log_sigma)
    log_normal = -((target[..., None] - mu) ** 2) / (2 * sigma**2) - np.log(
        sigma * np.sqrt(2 * np.pi)
    )
    return -np.mean(np.logaddexp.reduce(log_pi + log_normal, axis=-1))


def random_mixture(rng, shape, log_sigma_range):
    logit_pi = rng.normal(size=(*shape, 32, 5)).astype(np.float32)
    mu = rng.normal(size=(*shape, 32, 5)).astype(np.float32)
    log_sigma = rng.uniform(*log_sigma_range, size=(*shape, 32, 5)).astype(np.float32)
    target = rng.normal(size=(*shape, 32)).astype(np.float32)
    return logit_pi, mu, log_sigma, target


@pytest.mark.parametrize("log_sigma_range", [(-1.0, 1.0), (-12.0, -8.0)])
def test_mdn_loss_equals_numpy_reference(log_sigma_range):
    args = random_mixture(np.random.default_rng(0), (4, 7), log_sigma_range)
    loss = float(mdn_loss(*args))
    assert math.isfinite(loss)
    np.testing.assert_allclose(loss, reference_nll(*args), rtol=1e-4)


def test_peaked_mixtures_stay_finite_where_probability_space_underflows():
    logit_pi, mu, log_sigma, target = random_mixture(np.random.default_rng(1), (3,), (-12.0, -8.0))
    pi = tf.nn.softmax(logit_pi)
    density = pi * tf.exp(-0.5 * tf.square((target[..., None] - mu) / tf.exp(log_sigma)))
    with np.errstate(divide="ignore"):
        assert not np.isfinite(-np.log(tf.reduce_sum(density, -1).numpy())).all()
    assert np.isfinite(float(mdn_loss(logit_pi, mu, log_sigma, target)))


def test_sharp_mixture_on_its_mean_has_low_loss():
    # sigma = exp(-10): a model may be far sharper than sigma = 1 (no clamp at 1).
    mu = np.zeros((1, 32, 5), np.float32)
    loss = mdn_loss(np.zeros_like(mu), mu, np.full_like(mu, -10.0), np.zeros((1, 32), np.float32))
    np.testing.assert_allclose(float(loss), -10.0 + 0.5 * math.log(2 * math.pi), rtol=1e-5)


def test_mask_drops_padded_steps():
    logit_pi, mu, log_sigma, target = random_mixture(np.random.default_rng(2), (2, 6), (-1, 1))
    mask = np.array([[1, 1, 1, 1, 1, 1], [1, 1, 0, 0, 0, 0]], np.float32)
    masked = float(mdn_loss(logit_pi, mu, log_sigma, target, mask))
    expected = np.mean(
        [
            reference_nll(logit_pi[i, t], mu[i, t], log_sigma[i, t], target[i, t])
            for i in range(2)
            for t in range(6)
            if mask[i, t]
        ]
    )
    np.testing.assert_allclose(masked, expected, rtol=1e-5)


def test_temperature_scales_mixture_weights_and_sigma():
    n = 40_000
    logit_pi = np.tile(np.log([[1.0, 3.0]], dtype=np.float32), (n, 1))[:, None, :]
    mu = np.tile(np.array([[-10.0, 10.0]], np.float32), (n, 1))[:, None, :]
    log_sigma = np.zeros_like(mu)
    for temperature in (1.0, 2.0):
        draws = sample_next_latent(logit_pi, mu, log_sigma, temperature, seed=3).numpy()[:, 0]
        weights = np.array([1.0, 3.0]) ** (1 / temperature)
        np.testing.assert_allclose(np.mean(draws > 0), weights[1] / weights.sum(), atol=0.01)
        np.testing.assert_allclose(draws[draws > 0].std(), math.sqrt(temperature), rtol=0.03)


def test_step_equals_the_sequence_model_and_skips_the_head():
    memory = MDNRNN(lstm_units=16)
    inputs = tf.random.normal((3, 5, 35), seed=4)
    _, (h_sequence, c_sequence) = memory(inputs)
    state = memory.initial_state(3)
    for t in range(5):
        state = memory.step(inputs[:, t, :32], inputs[:, t, 32:], state)
    np.testing.assert_allclose(state[0], h_sequence, atol=1e-5)
    np.testing.assert_allclose(state[1], c_sequence, atol=1e-5)


def test_output_shapes():
    memory = MDNRNN()
    (logit_pi, mu, log_sigma), (h, c) = memory(tf.zeros((2, 7, 35)))
    assert logit_pi.shape == mu.shape == log_sigma.shape == (2, 7, 32, 5)
    assert h.shape == c.shape == (2, 256)
    assert memory.mdn.kernel.shape == (256, 480)


def inverse_sine_data(n, rng):
    """Bishop (1994): y uniform, x = y + 0.3 sin(2 pi y) + noise; predict y from x."""
    y = rng.uniform(0, 1, n)
    x = y + 0.3 * np.sin(2 * np.pi * y) + rng.uniform(-0.1, 0.1, n)
    return x.astype(np.float32).reshape(n, 1, 1), y.astype(np.float32).reshape(n, 1, 1)


def fitted_nll(num_mixtures, x, y, x_test, y_test, steps=600):
    keras.utils.set_random_seed(0)
    model = MDNRNN(latent_dim=1, lstm_units=24, num_mixtures=num_mixtures)
    optimizer = keras.optimizers.Adam(1e-2)

    @tf.function
    def train_step(inputs, targets):
        with tf.GradientTape() as tape:
            (logit_pi, mu, log_sigma), _ = model(inputs)
            loss = mdn_loss(logit_pi, mu, log_sigma, targets)
        optimizer.apply_gradients(
            zip(tape.gradient(loss, model.trainable_variables), model.trainable_variables)
        )
        return loss

    for _ in range(steps):
        train_step(x, y)
    (logit_pi, mu, log_sigma), _ = model(x_test)
    return float(mdn_loss(logit_pi, mu, log_sigma, y_test))


def test_mixture_learns_the_multimodal_inverse_sine_far_better_than_one_gaussian():
    rng = np.random.default_rng(0)
    x, y = inverse_sine_data(1000, rng)
    x_test, y_test = inverse_sine_data(1000, rng)
    mixture, single = (fitted_nll(k, x, y, x_test, y_test) for k in (5, 1))
    assert mixture < single - 0.4, (mixture, single)


def attentive_memory(window=4, units=16):
    from worldmodels.memory.memory import AttentiveMDNRNN

    keras.utils.set_random_seed(0)
    memory = AttentiveMDNRNN(lstm_units=units, window=window, attention_units=8)
    memory(tf.zeros((1, 2, 35)))
    return memory


def test_attention_is_causal():
    memory = attentive_memory()
    inputs = np.random.default_rng(0).normal(size=(2, 12, 35)).astype(np.float32)
    changed = inputs.copy()
    changed[:, 7:] += 5.0
    (before, *_), _ = memory(inputs)
    (after, *_), _ = memory(changed)
    np.testing.assert_allclose(before[:, :7], after[:, :7], atol=1e-6)
    assert not np.allclose(before[:, 7:], after[:, 7:])


def test_banded_attention_equals_the_full_masked_computation():
    from worldmodels.memory.memory import banded_attention

    rng = np.random.default_rng(1)
    batch, length, units, attention, window = 2, 11, 6, 5, 4
    values = rng.normal(size=(batch, length, units))
    queries = rng.normal(size=(batch, length, attention))
    keys = rng.normal(size=(batch, length, attention))
    score = rng.normal(size=attention)
    # Every pair (t, i) in float64: e = v . tanh(q_t + k_i), masked to t - window < i <= t.
    energy = np.tanh(queries[:, :, None, :] + keys[:, None, :, :]) @ score  # B x T x T
    t, i = np.meshgrid(np.arange(length), np.arange(length), indexing="ij")
    energy = np.where((i <= t) & (i > t - window), energy, -np.inf)
    weights = np.exp(energy - energy.max(-1, keepdims=True))
    weights /= weights.sum(-1, keepdims=True)
    expected = weights @ values
    banded = banded_attention(
        *(tf.constant(a, tf.float32) for a in (values, queries, keys, score)), window
    )
    np.testing.assert_allclose(banded, expected, atol=1e-5)


@pytest.mark.parametrize("kind", ["lstm", "attention"])
def test_the_rollout_step_equals_the_sequence_model_step_by_step(kind):
    from worldmodels.world_model import WorldModel

    memory = attentive_memory() if kind == "attention" else MDNRNN(lstm_units=16)
    memory(tf.zeros((1, 2, 35)))
    agent = WorldModel(memory=memory)
    inputs = np.random.default_rng(2).normal(size=(3, 9, 35)).astype(np.float32)
    features = memory.features(memory.lstm(inputs)[0]).numpy()
    state = agent.initial_state(3)
    assert not state["features"].any()  # nothing seen before the first step
    for t in range(9):
        state = agent.memory_step(inputs[:, t, :32], inputs[:, t, 32:], state)
        np.testing.assert_allclose(state["features"], features[:, t], atol=1e-5)
    assert agent.feature_dim == (32 if kind == "attention" else 16)


def test_reward_and_done_losses_equal_numpy_references():
    rng = np.random.default_rng(0)
    predicted, logit = rng.normal(size=(2, 3, 7)).astype(np.float32)
    reward = rng.normal(size=(3, 7)).astype(np.float32)
    done = rng.uniform(size=(3, 7)) < 0.3
    mask = np.ones((3, 7), np.float32)
    mask[2, 4:] = 0
    # One head: predictions carry a head axis of 1.
    losses = reward_done_losses(predicted[..., None], logit[..., None], reward, done, mask)
    kept = mask == 1
    probability = 1 / (1 + np.exp(-logit.astype(np.float64)))
    cross_entropy = -(done * np.log(probability) + (1 - done) * np.log(1 - probability))
    np.testing.assert_allclose(
        float(losses["reward_loss"]), np.mean((predicted - reward)[kept] ** 2), rtol=1e-5
    )
    np.testing.assert_allclose(float(losses["done_loss"]), cross_entropy[kept].mean(), rtol=1e-5)

    # Over-predictions weighted 3 times: the squared error, 3x where predicted > reward.
    weighted = reward_done_losses(
        predicted[..., None], logit[..., None], reward, done, mask, overprediction_weight=3.0
    )
    error = (predicted - reward)[kept].astype(np.float64)
    expected = np.mean(np.where(error > 0, 3.0, 1.0) * error**2)
    assert (error > 0).any() and (error < 0).any()
    np.testing.assert_allclose(float(weighted["reward_loss"]), expected, rtol=1e-5)
    assert float(weighted["done_loss"]) == pytest.approx(float(losses["done_loss"]))


def test_an_ensemble_s_losses_are_the_mean_of_each_head_s_own():
    rng = np.random.default_rng(1)
    predicted, logit = rng.normal(size=(2, 3, 7, 4)).astype(np.float32)  # 4 heads
    reward = rng.normal(size=(3, 7)).astype(np.float32)
    done = rng.uniform(size=(3, 7)) < 0.3
    mask = np.ones((3, 7), np.float32)
    mask[1, 2:] = 0
    losses = reward_done_losses(predicted, logit, reward, done, mask, overprediction_weight=2.0)
    kept = mask == 1
    per_head = []
    for k in range(4):
        alone = reward_done_losses(
            predicted[..., k : k + 1], logit[..., k : k + 1], reward, done, mask, 2.0
        )
        error = (predicted[..., k] - reward)[kept].astype(np.float64)
        np.testing.assert_allclose(
            float(alone["reward_loss"]),
            np.mean(np.where(error > 0, 2.0, 1.0) * error**2),
            rtol=1e-5,
        )
        per_head.append(alone)
    for name in ("reward_loss", "done_loss"):
        expected = np.mean([float(alone[name]) for alone in per_head])
        np.testing.assert_allclose(float(losses[name]), expected, rtol=1e-5)


def test_an_ensemble_of_heads_is_k_small_networks_that_numpy_steps_alike():
    from worldmodels.memory.numpy_memory import NumpyMemory

    memory = MDNRNN(lstm_units=8, num_mixtures=2, reward_done_heads=True, reward_done_ensemble=3)
    inputs = np.random.default_rng(3).normal(size=(2, 5, 35)).astype(np.float32)
    memory(inputs)  # builds the mixture's layer too, which NumpyMemory copies
    features, _ = memory.sequence_features(inputs)
    reward, done_logit = memory.predict_reward_done(features)
    assert reward.shape == done_logit.shape == (2, 5, 3)
    hidden_kernel, hidden_bias, output_kernel, output_bias = memory.reward_done.get_weights()
    assert hidden_kernel.shape == (3, 8, 64) and output_kernel.shape == (3, 64, 2)
    for k in range(3):  # each head its own network: tanh(f W1 + b1) W2 + b2
        head = np.tanh(features.numpy() @ hidden_kernel[k] + hidden_bias[k]) @ output_kernel[k]
        head += output_bias[k]
        np.testing.assert_allclose(reward[..., k], head[..., 0], atol=1e-5)
        np.testing.assert_allclose(done_logit[..., k], head[..., 1], atol=1e-5)
    assert not np.allclose(reward[..., 0], reward[..., 1])  # their own initial weights
    stepped = NumpyMemory(memory).reward_done(features.numpy()[:, 2])
    np.testing.assert_allclose(stepped[0], reward[:, 2], atol=1e-5)
    np.testing.assert_allclose(stepped[1], done_logit[:, 2], atol=1e-5)


def test_an_ensemble_s_gradient_at_the_budget_batch_is_a_matrix_product():
    """At the budget preset's M batch (100 episodes of 1000 steps, 256 features) the heads'
    gradient takes about a GB. Written over an ellipsis, TensorFlow's einsum gradient built a
    100 x 1000 x 320 x 256 tensor (32 GB) first: an OOM that tiny tests never met."""
    from worldmodels.memory.memory import RewardDoneEnsemble

    heads = RewardDoneEnsemble(5)
    heads.build((None, 256))
    features = tf.random.normal((100, 1000, 256), seed=0)
    with tf.GradientTape() as tape:
        outputs = heads(features)
        loss = tf.reduce_sum(outputs**2)
    gradients = tape.gradient(loss, heads.trainable_variables)
    assert outputs.shape == (100, 1000, 5, 2)
    assert [g.shape for g in gradients] == [(5, 256, 64), (5, 64), (5, 64, 2), (5, 2)]


def test_the_heads_read_the_features_and_a_memory_without_them_says_so():
    memory = MDNRNN(lstm_units=8, num_mixtures=2, reward_done_heads=True)
    features, _ = memory.sequence_features(tf.zeros((2, 5, 35)))
    reward, done_logit = memory.predict_reward_done(features)
    assert reward.shape == done_logit.shape == (2, 5, 1)
    weights, bias = memory.reward_done.get_weights()
    np.testing.assert_allclose(
        reward[..., 0], features.numpy() @ weights[:, 0] + bias[0], atol=1e-6
    )
    with pytest.raises(ValueError, match="--reward-done-heads"):
        MDNRNN(lstm_units=8).predict_reward_done(features)
