"""The random policies of stage 1 and the episode loop they run in, one environment at a time."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from worldmodels.seeds import Stream, derive_seed


def episode_seed(base_seed: int, index: int) -> int:
    """The env seed of episode `index`: depends on nothing but (base_seed, index)."""
    return derive_seed(base_seed, Stream.EPISODE_TRACKS, index)


def white_noise_actions(action_space, seed: int) -> Iterator[np.ndarray]:
    """Independent uniform actions: `action_space.sample()` every step (the write-up's policy)."""
    action_space.seed(seed)
    while True:
        yield action_space.sample()


def brownian_actions(action_space, seed: int, dt: float) -> Iterator[np.ndarray]:
    """a_{t+1} = clip(a_t + sqrt(dt) * N(0, 1)) from a uniform a_0: smooth steering and gas."""
    action_space.seed(seed)
    noise = np.random.default_rng(seed)
    action = action_space.sample()
    while True:
        yield action
        step = np.sqrt(dt) * noise.standard_normal(action.shape)
        action = np.clip(action + step, action_space.low, action_space.high).astype(np.float32)


def sweeping_steering(steps: int, gas: float = 0.5, period: int = 60) -> np.ndarray:
    """`steps` actions [steps, 3] steering sin(2 pi t / `period`) at steady `gas`, no brake: a
    car driven along and across the road as an agent drives it, for tests and benchmarks of
    the environment (random actions leave the car near the start)."""
    steer = np.sin(2 * np.pi * np.arange(steps) / period)
    return np.stack([steer, np.full(steps, gas), np.zeros(steps)], 1).astype(np.float32)


def run_episode(env, actions: Iterator[np.ndarray], seed: int) -> dict:
    """Steps `env` from `reset(seed=seed)` until it terminates or is truncated.

    Stores (o_t, a_t, r_t, done_t) with o_t the observation a_t was chosen on; the observation
    after the last step is not stored. Actions are float32 as stored, so replays are exact.
    """
    observation, _ = env.reset(seed=seed)
    steps = {"observation": [], "action": [], "reward": [], "done": []}
    done = False
    while not done:
        action = np.asarray(next(actions), dtype=np.float32)
        next_observation, reward, terminated, truncated, _ = env.step(action)
        done = terminated or truncated
        for key, value in zip(steps, (observation, action, reward, done)):
            steps[key].append(value)
        observation = next_observation
    episode = {key: np.stack(values) for key, values in steps.items()}
    episode["seed"] = seed
    return episode
