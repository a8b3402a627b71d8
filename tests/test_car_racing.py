import numpy as np
import pytest
from PIL import Image

from worldmodels.data.car_racing import make_env, preprocess_frame
from worldmodels.params import EnvParams


@pytest.fixture(scope="module")
def raw_frames():
    """Real 96x96 CarRacing frames: the zoom-in at the start and some driving."""
    import gymnasium

    env = gymnasium.make("CarRacing-v3")
    frame, _ = env.reset(seed=3)
    frames = [frame]
    for _ in range(60):
        frame, *_ = env.step(np.array([0.3, 0.5, 0.0], np.float32))
        frames.append(frame)
    env.close()
    return frames


def test_preprocessing_is_crop_then_pil_bilinear(raw_frames):
    for frame in raw_frames[::10]:
        expected = np.array(Image.fromarray(frame[0:84, :, :]).resize((64, 64), Image.BILINEAR))
        observation = preprocess_frame(frame)
        assert observation.dtype == np.uint8 and observation.shape == (64, 64, 3)
        np.testing.assert_array_equal(observation, expected)


def test_preprocessing_differs_from_the_blocky_nearest_resize(raw_frames):
    blocky = np.array(Image.fromarray(raw_frames[-1][:84]).resize((64, 64), Image.NEAREST))
    assert not np.array_equal(preprocess_frame(raw_frames[-1]), blocky)


def test_env_returns_preprocessed_frames_and_truncates_at_episode_length(raw_frames):
    env = make_env(EnvParams(episode_length=5))
    observation, _ = env.reset(seed=3)
    np.testing.assert_array_equal(observation, preprocess_frame(raw_frames[0]))
    assert env.observation_space.shape == (64, 64, 3)
    assert env.observation_space.dtype == np.uint8
    truncated_at = None
    for step in range(1, 10):
        observation, _, terminated, truncated, _ = env.step(np.array([0.3, 0.5, 0.0], np.float32))
        np.testing.assert_array_equal(observation, preprocess_frame(raw_frames[step]))
        if truncated:
            truncated_at = step
            break
    assert truncated_at == 5
    env.close()
