"""Dream episodes: the controller driving M (worldmodels/control/dream.py)."""

import dataclasses

import numpy as np
import pytest
import tensorflow as tf

from worldmodels.control.controller import parameter_count
from worldmodels.control.dream import DreamEngine, FirstFrames, dream_reward_done
from worldmodels.control.rollouts import EpisodeTask
from worldmodels.memory.memory import MDNRNN
from worldmodels.memory.numpy_memory import mixture_draws, sample_mixture
from worldmodels.world_model import WorldModel

UNITS, MIXTURES = 16, 3


@pytest.fixture(scope="module")
def agent():
    """A random M with heads whose done logit stays far below 0: episodes run to the end."""
    memory = MDNRNN(lstm_units=UNITS, num_mixtures=MIXTURES, reward_done_heads=True)
    memory(tf.zeros((1, 1, 35)))
    kernel, bias = memory.reward_done.get_weights()
    memory.reward_done.set_weights([kernel, bias - np.array([0.0, 50.0], np.float32)])
    return WorldModel(memory=memory)


@pytest.fixture(scope="module")
def first_frames():
    rng = np.random.default_rng(1)
    return FirstFrames(
        rng.normal(size=(4, 32)).astype(np.float32), rng.normal(-2, 0.5, (4, 32)).astype(np.float32)
    )


def tasks(count, seed=0):
    rng = np.random.default_rng(seed)
    return [
        EpisodeTask(i, 0.5 * rng.standard_normal(parameter_count(32 + UNITS)), seed=100 + i)
        for i in range(count)
    ]


@pytest.mark.parametrize("temperature", [1.0, 2.0, 0.5])
def test_mixture_draws_follow_the_tempered_weights_and_spread(temperature):
    """Two components far apart: P(second) = softmax(logits / tau), its spread sigma sqrt(tau)."""
    logit_pi = np.array([[0.0, np.log(3.0)]])
    mu = np.array([[-10.0, 10.0]])
    log_sigma = np.log([[1.0, 0.5]])
    generator = np.random.default_rng(0)
    uniform, noise = generator.uniform(size=(20000, 1, 2)), generator.standard_normal((20000, 1))
    draws = sample_mixture(logit_pi, mu, log_sigma, temperature, uniform, noise)[:, 0]
    second = draws[draws > 0]
    expected_share = 3 ** (1 / temperature) / (1 + 3 ** (1 / temperature))
    assert len(second) / len(draws) == pytest.approx(expected_share, abs=0.012)
    assert second.std() == pytest.approx(0.5 * np.sqrt(temperature), rel=0.03)
    assert second.mean() == pytest.approx(10.0, abs=0.02)


def test_a_dream_step_equals_the_sequence_model_on_the_same_inputs(agent, first_frames):
    engine = DreamEngine(agent, first_frames, temperature=1.3, episode_length=12)
    trajectories = {}
    (task,) = tasks(1)
    (result,) = engine.run([task], trajectories)
    z, actions, rewards = (trajectories[task.key][k] for k in ("z", "action", "reward"))
    steps = result.steps
    assert steps == 12
    assert z.shape == (steps + 1, 32) and actions.shape == (steps, 3)
    assert result.total_reward == pytest.approx(rewards.sum(), rel=1e-5)

    memory = agent.memory
    features, _ = memory.sequence_features(np.concatenate([z[:-1], actions], -1)[None])
    reward, _ = memory.predict_reward_done(features)
    np.testing.assert_allclose(rewards, reward.numpy()[0, :, 0], atol=1e-5)
    # Replaying the episode's generator on the sequence model's mixtures gives the same z's.
    generator = np.random.default_rng(task.seed)
    start = generator.integers(len(first_frames.mu))
    z0 = first_frames.mu[start] + np.exp(
        first_frames.logvar[start] / 2
    ) * generator.standard_normal(32)
    np.testing.assert_allclose(z[0], z0, atol=1e-6)
    logit_pi, mu, log_sigma = (tensor.numpy()[0] for tensor in memory.mixture(features))
    for t in range(steps):
        uniform, noise = mixture_draws(generator, 32, MIXTURES)
        drawn = sample_mixture(logit_pi[t], mu[t], log_sigma[t], 1.3, uniform, noise)
        np.testing.assert_allclose(z[t + 1], drawn, atol=1e-4)


def test_batched_dream_episodes_equal_one_at_a_time(agent, first_frames):
    engine = DreamEngine(agent, first_frames, temperature=1.0, episode_length=15)
    together = engine.run(tasks(3))
    alone = [engine.run([task])[0] for task in tasks(3)]
    for batched, single in zip(together, alone):
        assert batched.steps == single.steps
        assert batched.total_reward == pytest.approx(single.total_reward, rel=1e-5, abs=1e-6)


@pytest.mark.parametrize("done_bias, steps", [(50.0, 1), (-50.0, 15)])
def test_an_episode_ends_when_the_done_head_says_so(first_frames, done_bias, steps):
    memory = MDNRNN(lstm_units=UNITS, num_mixtures=MIXTURES, reward_done_heads=True)
    memory(tf.zeros((1, 1, 35)))
    kernel, bias = memory.reward_done.get_weights()
    memory.reward_done.set_weights([0 * kernel, np.array([0.0, done_bias], np.float32)])
    engine = DreamEngine(WorldModel(memory=memory), first_frames, 1.0, episode_length=15)
    assert [result.steps for result in engine.run(tasks(2))] == [steps, steps]


def test_a_memory_without_heads_cannot_dream(first_frames):
    memory = MDNRNN(lstm_units=UNITS)
    memory(tf.zeros((1, 1, 35)))
    with pytest.raises(ValueError, match="--reward-done-heads"):
        DreamEngine(WorldModel(memory=memory), first_frames, 1.0, 10)


def test_a_dream_episode_without_positive_predicted_reward_stalls(first_frames):
    memory = MDNRNN(lstm_units=UNITS, num_mixtures=MIXTURES, reward_done_heads=True)
    memory(tf.zeros((1, 1, 35)))
    kernel, _ = memory.reward_done.get_weights()
    memory.reward_done.set_weights([0 * kernel, np.array([-0.5, -50.0], np.float32)])
    engine = DreamEngine(WorldModel(memory=memory), first_frames, 1.0, episode_length=30)
    (task,) = tasks(1)
    stalled = dataclasses.replace(task, stall_steps=4)
    (result,) = engine.run([stalled])
    assert result.stalled and result.steps == 4
    assert result.total_reward == pytest.approx(-0.5 * 4 - 0.1 * (30 - 4))
    assert engine.run([task])[0].steps == 30


def test_a_dream_step_reads_the_heads_mean_less_the_penalty_on_their_spread():
    reward = np.array([[1.0, 3.0], [2.0, 2.0]])
    done_logit = np.array([[3.0, -1.0], [-3.0, -4.0]])  # mean P(done) 0.61 and 0.03
    stepped_reward, done = dream_reward_done(reward, done_logit, penalty=0.5)
    np.testing.assert_allclose(stepped_reward, [2.0 - 0.5 * 1.0, 2.0])
    np.testing.assert_array_equal(done, [True, False])
    alone, done_alone = dream_reward_done(reward[:, :1], done_logit[:, :1], penalty=0.5)
    np.testing.assert_allclose(alone, [1.0, 2.0])  # one head: no spread to penalise
    np.testing.assert_array_equal(done_alone, [True, False])


def test_a_dream_on_an_ensemble_is_charged_for_the_heads_disagreement(first_frames):
    memory = MDNRNN(
        lstm_units=UNITS, num_mixtures=MIXTURES, reward_done_heads=True, reward_done_ensemble=3
    )
    memory(tf.zeros((1, 1, 35)))
    weights = memory.reward_done.get_weights()
    weights[-1][:, 1] = -50.0  # every head's done logit far below 0: episodes run to the end
    memory.reward_done.set_weights(weights)
    agent = WorldModel(memory=memory)
    engine = DreamEngine(agent, first_frames, 1.0, episode_length=10, disagreement_penalty=0.7)
    trajectories = {}
    (task,) = tasks(1)
    (result,) = engine.run([task], trajectories)
    z, actions, rewards = (trajectories[task.key][k] for k in ("z", "action", "reward"))
    features, _ = memory.sequence_features(np.concatenate([z[:-1], actions], -1)[None])
    heads = memory.predict_reward_done(features)[0].numpy()[0].astype(np.float64)  # [T, 3]
    np.testing.assert_allclose(rewards, heads.mean(1) - 0.7 * heads.std(1), atol=1e-5)
    assert heads.std(1).min() > 0
    assert result.total_reward == pytest.approx(rewards.sum(), rel=1e-5)

    with pytest.raises(ValueError, match="--reward-done-ensemble"):
        single = MDNRNN(lstm_units=UNITS, num_mixtures=MIXTURES, reward_done_heads=True)
        single(tf.zeros((1, 1, 35)))
        DreamEngine(WorldModel(memory=single), first_frames, 1.0, 10, disagreement_penalty=0.7)
