"""CarRacing with the paper's observation preprocessing, headless.

gymnasium draws CarRacing's observation off-screen with pygame, so no display (and no xvfb)
is needed. `env.render()` is never called: the observation is all the agent sees.
"""

from __future__ import annotations

import os

# Set before pygame is first imported (by gymnasium's CarRacing): no banner, no display.
os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")
os.environ.setdefault("SDL_VIDEODRIVER", "dummy")

import gymnasium  # noqa: E402
import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402

from worldmodels.params import EnvParams  # noqa: E402


def preprocess_frame(frame: np.ndarray, crop_rows: int = 84, frame_size: int = 64) -> np.ndarray:
    """96x96x3 uint8 frame -> frame_size x frame_size x 3 uint8.

    Keeps rows 0..crop_rows-1 (drops the indicator bar) and resizes with PIL bilinear: the
    write-up's first agent was trained on blocky frames from a different filter.
    """
    cropped = Image.fromarray(np.ascontiguousarray(frame[:crop_rows]))
    return np.asarray(cropped.resize((frame_size, frame_size), Image.Resampling.BILINEAR))


class PreprocessObservation(gymnasium.ObservationWrapper):
    """Returns preprocessed uint8 observations; scaling to [0, 1] is left to the networks."""

    def __init__(self, env: gymnasium.Env, crop_rows: int = 84, frame_size: int = 64):
        super().__init__(env)
        self.crop_rows = crop_rows
        self.frame_size = frame_size
        self.observation_space = gymnasium.spaces.Box(
            low=0, high=255, shape=(frame_size, frame_size, 3), dtype=np.uint8
        )

    def observation(self, observation: np.ndarray) -> np.ndarray:
        return preprocess_frame(observation, self.crop_rows, self.frame_size)


def make_env(params: EnvParams = EnvParams()) -> gymnasium.Env:
    """CarRacing truncated at `params.episode_length` steps, with preprocessed observations."""
    env = gymnasium.make(params.env_id, max_episode_steps=params.episode_length)
    return PreprocessObservation(env, params.crop_rows, params.frame_size)
