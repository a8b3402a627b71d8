import keras
import numpy as np
import pytest
import tensorflow as tf

from worldmodels.vision.vae import (
    ACTIVITY_THRESHOLD,
    VAE,
    kl_divergence,
    latent_activity,
    sample_latent,
    vae_loss,
)


@pytest.fixture(scope="module")
def vae():
    model = VAE()
    model(tf.zeros((1, 64, 64, 3)))
    return model


def test_layer_output_shapes(vae):
    shapes = [layer.output.shape[1:] for layer in vae.encoder.layers]
    assert shapes == [(31, 31, 32), (14, 14, 64), (6, 6, 128), (2, 2, 256), (1024,), (64,)]
    shapes = [layer.output.shape[1:] for layer in vae.decoder.layers]
    assert shapes == [(1024,), (1, 1, 1024), (5, 5, 128), (13, 13, 64), (30, 30, 32), (64, 64, 3)]


def test_decoder_first_layer_is_linear_as_the_official_dec_fc(vae):
    dense = vae.decoder.layers[0]
    latent = tf.random.normal((4, 32))
    expected = latent.numpy() @ dense.kernel.numpy() + dense.bias.numpy()
    np.testing.assert_allclose(dense(latent), expected, rtol=1e-5, atol=1e-5)
    assert (expected < 0).any()  # a ReLU would have zeroed these


def test_parameter_count(vae):
    def conv(k, c_in, c_out):
        return k * k * c_in * c_out + c_out

    encoder = (
        conv(4, 3, 32) + conv(4, 32, 64) + conv(4, 64, 128) + conv(4, 128, 256) + 1024 * 64 + 64
    )
    decoder = (
        32 * 1024 + 1024 + conv(5, 1024, 128) + conv(5, 128, 64) + conv(6, 64, 32) + conv(6, 32, 3)
    )
    assert vae.count_params() == encoder + decoder == 4_348_547


def test_encode_decode_ranges(vae):
    mu, logvar = vae.encode(tf.random.uniform((5, 64, 64, 3)))
    assert mu.shape == logvar.shape == (5, 32)
    frames = vae.decode(tf.random.normal((5, 32))).numpy()
    assert frames.shape == (5, 64, 64, 3) and frames.min() >= 0 and frames.max() <= 1


def test_kl_equals_closed_form_and_monte_carlo():
    rng = np.random.default_rng(0)
    mu = rng.normal(size=(4, 32)).astype(np.float32)
    logvar = rng.normal(scale=0.5, size=(4, 32)).astype(np.float32)
    sigma = np.exp(logvar / 2)
    closed_form = np.sum(np.log(1 / sigma) + (sigma**2 + mu**2) / 2 - 0.5, axis=1)
    np.testing.assert_allclose(kl_divergence(mu, logvar), closed_form, rtol=1e-5)
    # Monte Carlo: E_q[log q(z) - log p(z)] with z from the reparameterised sampler.
    z = np.stack([sample_latent(mu, logvar).numpy() for _ in range(4000)])
    log_q = -0.5 * ((z - mu) / sigma) ** 2 - np.log(sigma)
    log_p = -0.5 * z**2
    np.testing.assert_allclose(
        np.mean(np.sum(log_q - log_p, -1), 0), closed_form, rtol=0.05, atol=0.3
    )


def test_free_bits_floor_sends_no_gradient_below_it():
    frames = tf.random.uniform((2, 64, 64, 3))
    reconstruction = tf.random.uniform((2, 64, 64, 3))
    mu = tf.Variable([[0.1] * 32, [3.0] * 32])  # KL ~0.16 (below 16) and 144 (above)
    logvar = tf.Variable(tf.zeros((2, 32)))
    with tf.GradientTape() as tape:
        losses = vae_loss(frames, reconstruction, mu, logvar, kl_floor=16.0)
    gradient_mu, gradient_logvar = tape.gradient(losses["loss"], [mu, logvar])
    assert np.all(gradient_mu.numpy()[0] == 0) and np.all(gradient_logvar.numpy()[0] == 0)
    np.testing.assert_allclose(gradient_mu.numpy()[1], 3.0 / 2)  # d/dmu of mean over 2 samples
    kl = kl_divergence(mu, logvar).numpy()
    np.testing.assert_allclose(float(losses["kl_loss"]), (16.0 + kl[1]) / 2, rtol=1e-6)
    np.testing.assert_allclose(float(losses["kl"]), kl.mean(), rtol=1e-6)


def test_reconstruction_loss_is_summed_over_pixels_and_averaged_over_the_batch():
    frames = np.zeros((2, 64, 64, 3), np.float32)
    reconstruction = np.full((2, 64, 64, 3), 0.5, np.float32)
    losses = vae_loss(frames, reconstruction, tf.zeros((2, 32)), tf.zeros((2, 32)), kl_floor=16.0)
    np.testing.assert_allclose(float(losses["reconstruction_loss"]), 64 * 64 * 3 * 0.25)
    np.testing.assert_allclose(float(losses["loss"]), 64 * 64 * 3 * 0.25 + 16.0)


def test_reconstruction_loss_falls_on_real_frames(real_frames):
    keras.utils.set_random_seed(0)
    model = VAE()
    optimizer = keras.optimizers.Adam(1e-3)
    frames = tf.constant(real_frames, tf.float32) / 255.0

    @tf.function
    def train_step(batch):
        with tf.GradientTape() as tape:
            losses = model.loss_terms(batch)
        optimizer.apply_gradients(
            zip(tape.gradient(losses["loss"], model.trainable_variables), model.trainable_variables)
        )
        return losses["reconstruction_loss"]

    before = float(model.loss_terms(frames)["reconstruction_loss"])
    for _ in range(4):
        for start in range(0, len(frames), 32):
            train_step(frames[start : start + 32])
    after = float(model.loss_terms(frames)["reconstruction_loss"])
    assert after < 0.5 * before, (before, after)


def test_gumbel_softmax_samples_follow_the_categorical_and_become_one_hot():
    from worldmodels.vision.vae import gumbel_softmax_sample

    logits = tf.constant(np.log([[0.1, 0.2, 0.3, 0.4]]), tf.float32)
    draws = 20_000
    tiled = tf.tile(logits, [draws, 1])
    for temperature in (5.0, 1.0, 0.1):
        samples = gumbel_softmax_sample(tiled, temperature, seed=1).numpy()
        frequencies = np.bincount(samples.argmax(-1), minlength=4) / draws
        # The argmax of a Gumbel-softmax sample is a draw of the categorical at any temperature.
        np.testing.assert_allclose(frequencies, [0.1, 0.2, 0.3, 0.4], atol=0.015)
    assert gumbel_softmax_sample(tiled, 0.01, seed=2).numpy().max(-1).mean() > 0.99
    assert gumbel_softmax_sample(tiled, 5.0, seed=2).numpy().max(-1).mean() < 0.5


def test_hard_samples_are_one_hot_draws_of_the_categorical():
    from worldmodels.vision.vae import hard_sample

    rng = np.random.default_rng(0)
    logits = np.log(np.array([0.5, 0.25, 0.125, 0.125]))
    samples = hard_sample(np.tile(logits, (20_000, 1)), rng.uniform(size=(20_000, 4)))
    assert set(np.unique(samples)) == {0.0, 1.0} and np.all(samples.sum(-1) == 1)
    np.testing.assert_allclose(samples.mean(0), [0.5, 0.25, 0.125, 0.125], atol=0.015)


def test_categorical_kl_to_uniform_equals_the_closed_form():
    from worldmodels.vision.vae import categorical_kl_to_uniform

    logits = np.random.default_rng(3).normal(size=(2, 32, 32))
    q = np.exp(logits) / np.exp(logits).sum(-1, keepdims=True)
    expected = np.sum(q * np.log(q * 32), axis=(-1, -2))
    np.testing.assert_allclose(categorical_kl_to_uniform(tf.constant(logits)), expected, rtol=1e-6)
    assert float(categorical_kl_to_uniform(tf.zeros((1, 32, 32)))[0]) == pytest.approx(0, abs=1e-6)
    one_hot = tf.constant(np.eye(32)[None] * 100.0)  # all mass on one class: 32 log 32
    assert float(categorical_kl_to_uniform(one_hot)[0]) == pytest.approx(32 * np.log(32), rel=1e-4)


def test_annealing_schedules_at_epochs_0_10_20():
    from worldmodels.params import VAEParams
    from worldmodels.vision.vae import annealed

    p = VAEParams()
    temperature = [
        annealed(p.gumbel_temperature_start, p.gumbel_temperature_end, 10, e) for e in (0, 10, 20)
    ]
    kl_weight = [annealed(p.kl_weight_start, p.kl_weight_end, 10, e) for e in (0, 10, 20)]
    np.testing.assert_allclose(temperature, [5.0, 0.1 + 4.9 / 2, 0.1 + 4.9 / 4])
    np.testing.assert_allclose(kl_weight, [2.0, 0.01 + 1.99 / 2, 0.01 + 1.99 / 4])
    assert p.gumbel_temperature_half_life == p.kl_weight_half_life == 10


def test_discrete_vae_shapes_and_parameters():
    from worldmodels.vision.vae import build_vae

    vae = build_vae("discrete")
    frames = tf.random.uniform((3, 64, 64, 3))
    assert vae.logits(frames).shape == (3, 32, 32) and vae.code_width == 1024
    assert vae.reconstruct(frames).shape == (3, 64, 64, 3)
    codes = vae.prior_codes(5, seed=0).numpy()
    assert codes.shape == (5, 1024) and np.all(codes.reshape(5, 32, 32).sum(-1) == 1)
    # The continuous VAE's layers, with 1024 logits out of the encoder and into the decoder.
    assert vae.count_params() == 4_348_547 + 1024 * (1024 - 64) + (1024 - 64) + (1024 - 32) * 1024


def test_latent_activity_is_the_variance_of_mu_over_all_frames():
    rng = np.random.default_rng(0)
    # Two dimensions that move (std 1 and 0.3), one that barely does (std 0.05), one constant.
    mu = rng.normal(size=(1000, 4)) * [1.0, 0.3, 0.05, 0.0] + [0.0, 5.0, -2.0, 3.0]
    batches = [mu[:300], mu[300:301], mu[301:]]
    activity = latent_activity(batches)
    np.testing.assert_allclose(activity, mu.var(axis=0), rtol=1e-9, atol=1e-12)
    assert list(activity > ACTIVITY_THRESHOLD) == [True, True, False, False]
    with pytest.raises(ValueError):
        latent_activity([])
