"""FastCarRacing must be indistinguishable from stock CarRacing-v3: every pixel, every reward."""

from pathlib import Path

import gymnasium
import numpy as np
import pytest

from worldmodels.data.car_racing import FAST_ENV_ID, FastCarRacing, make_env
from worldmodels.data.policies import brownian_actions, sweeping_steering
from worldmodels.params import EnvParams


def random_actions(seed, steps):
    rng = np.random.default_rng(seed)
    return rng.uniform([-1, 0, 0], [1, 1, 1], (steps, 3)).astype(np.float32)


def constant(action, steps):
    return np.tile(np.array(action, np.float32), (steps, 1))


def brownian(seed, steps):
    env = gymnasium.make("CarRacing-v3")
    actions = brownian_actions(env.action_space, seed, dt=1 / 50)
    return np.stack([next(actions) for _ in range(steps)])


# The shipped agent's 1000 actions on track 5 (tests/data/make_agent_actions.py).
AGENT_ACTIONS = np.load(Path(__file__).with_name("data") / "agent_actions.npy")


CASES = {
    "random actions, track 0": (0, random_actions(0, 400), {}),
    "random actions, track 1": (1, random_actions(1, 400), {}),
    "straight over the grass off the playfield": (0, constant([0.0, 0.4, 0.0], 400), {}),
    "hard left at full gas": (2, constant([-1.0, 1.0, 0.0], 300), {}),
    "braking while steering": (3, constant([0.6, 0.3, 0.8], 200), {}),
    "randomised colours": (4, random_actions(4, 250), {"domain_randomize": True}),
    "steering swept at steady gas": (12, sweeping_steering(400), {}),
    "steering swept at full gas": (13, sweeping_steering(300, gas=1.0, period=25), {}),
    "brownian actions": (14, brownian(14, 400), {}),
    "the shipped agent driving a whole episode": (5, AGENT_ACTIONS, {}),
}


def transitions(env_id, seed, actions, max_episode_steps=1000, **kwargs):
    env = gymnasium.make(env_id, max_episode_steps=max_episode_steps, **kwargs)
    observation, info = env.reset(seed=seed)
    steps = [(observation, None, False, False, info)]
    for action in actions:
        steps.append(env.step(action))
        if steps[-1][2] or steps[-1][3]:
            break
    env.close()
    return steps


def assert_identical(stock, fast):
    assert len(stock) == len(fast)
    for t, (expected, actual) in enumerate(zip(stock, fast)):
        assert np.array_equal(expected[0], actual[0]), f"frames differ at step {t}"
        assert expected[1:] == actual[1:], (
            f"reward, terminated, truncated or info differ at step {t}"
        )


@pytest.mark.parametrize("case", sorted(CASES))
def test_every_frame_reward_and_flag_equals_stock(case):
    seed, actions, kwargs = CASES[case]
    stock = transitions("CarRacing-v3", seed, actions, **kwargs)
    fast = transitions(FAST_ENV_ID, seed, actions, **kwargs)
    assert_identical(stock, fast)
    if case.startswith("straight"):
        # Reaching the edge of the playfield: the -100 and the frames where the field
        # polygon no longer covers the screen.
        assert fast[-1][1] == -100 and fast[-1][2]


def test_envs_stepped_in_turn_share_the_canvas_and_each_equals_stock():
    seeds, actions = (9, 10, 11), random_actions(9, 70)
    stock = [transitions("CarRacing-v3", seed, actions) for seed in seeds]
    envs = [gymnasium.make(FAST_ENV_ID) for _ in seeds]
    fast = [[(env.reset(seed=seed)[0],)] for env, seed in zip(envs, seeds)]
    for action in actions:
        for env, steps in zip(envs, fast):
            steps.append(env.step(action))
    for expected, actual in zip(stock, fast):
        for t, (stock_step, fast_step) in enumerate(zip(expected, actual)):
            assert np.array_equal(stock_step[0], fast_step[0]), f"frames differ at step {t}"
    frame = fast[0][-1][0]
    assert frame.flags.c_contiguous and frame.flags.writeable


def test_truncation_matches():
    actions = random_actions(5, 100)
    stock = transitions("CarRacing-v3", 5, actions, max_episode_steps=60)
    fast = transitions(FAST_ENV_ID, 5, actions, max_episode_steps=60)
    assert_identical(stock, fast)
    assert len(fast) == 61 and fast[-1][3]


def test_preprocessed_observations_match():
    stock, fast = (make_env(EnvParams(env=name, episode_length=80)) for name in ("stock", "fast"))
    assert isinstance(fast.unwrapped, FastCarRacing)
    observations = [env.reset(seed=6)[0] for env in (stock, fast)]
    for action in random_actions(6, 80):
        assert np.array_equal(*observations)
        observations = [env.step(action)[0] for env in (stock, fast)]
    assert np.array_equal(*observations)


def test_reset_to_a_new_track_redraws_the_new_road():
    env = FastCarRacing()
    stock = gymnasium.make("CarRacing-v3").unwrapped
    for seed in (7, 8):
        assert np.array_equal(env.reset(seed=seed)[0], stock.reset(seed=seed)[0])
        for action in random_actions(seed, 60):
            assert np.array_equal(env.step(action)[0], stock.step(action)[0])


def test_other_render_modes_still_work():
    env = FastCarRacing(render_mode="rgb_array")
    env.reset(seed=0)
    assert env.render().shape == (400, 600, 3)


def test_indicators_reaching_into_the_scene_are_drawn_as_stock_draws_them():
    # A wheel spinning past 400 rad/s raises its indicator above the bar, over the scene.
    frames = []
    for env in (gymnasium.make("CarRacing-v3").unwrapped, FastCarRacing()):
        env.reset(seed=15)
        for action in random_actions(15, 30):
            env.step(action)
        for omega in (390.0, 450.0, 900.0):
            env.car.wheels[1].omega = omega
            frames.append(env._render("state_pixels"))
    stock, fast = frames[:3], frames[3:]
    for omega, expected, actual in zip((390, 450, 900), stock, fast):
        assert np.array_equal(expected, actual), f"frames differ at a wheel spin of {omega}"
    assert not np.array_equal(stock[0][:84], stock[2][:84])  # the indicator did reach up


@pytest.mark.parametrize("first", [20, 30])
def test_many_tracks_equal_stock(first):
    for seed in range(first, first + 10):
        actions = brownian(seed, 40)
        assert_identical(
            transitions("CarRacing-v3", seed, actions), transitions(FAST_ENV_ID, seed, actions)
        )


def test_a_car_too_big_for_its_band_is_drawn_with_the_whole_scene(monkeypatch):
    import worldmodels.data.car_racing as car_racing

    actions = sweeping_steering(60)
    stock = transitions("CarRacing-v3", 16, actions)
    # A 30-row band cannot hold the car (~90 rows across): the whole scene is one band.
    monkeypatch.setattr(car_racing, "_CAR_BAND_HALF_HEIGHT", 15)
    assert_identical(stock, transitions(FAST_ENV_ID, 16, actions))
    # Without that check, the car's pixels outside its band would be lost.
    monkeypatch.setattr(FastCarRacing, "_car_fits_its_band", lambda self, zoom: True)
    monkeypatch.setattr(car_racing, "_BANDS", [(100, 185), (185, 215), (215, 800)][::-1])
    fast = transitions(FAST_ENV_ID, 16, actions)
    assert not all(np.array_equal(s[0], f[0]) for s, f in zip(stock, fast))
