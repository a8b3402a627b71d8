import gymnasium
import numpy as np
import pytest

from worldmodels.data.car_racing import make_env, preprocess_frame
from worldmodels.data.policies import (
    brownian_actions,
    episode_seed,
    run_episode,
    white_noise_actions,
)
from worldmodels.data.sample_policy import main
from worldmodels.data.tf_records import episode_filename, list_episodes, load_episode
from worldmodels.params import EnvParams


def sample(home, *flags):
    main(["--home", str(home), "--episode-length", "50", *flags])


@pytest.fixture(scope="module")
def sampled(tmp_path_factory):
    """Two random-policy episodes of 50 steps sampled by two worker processes."""
    home = tmp_path_factory.mktemp("home")
    sample(home, "--episodes", "2", "--num-process", "2")
    return home / "random-rollouts"


def test_writes_one_record_per_episode_with_derived_seeds(sampled):
    paths = list_episodes(sampled)
    assert [p.name for p in paths] == [episode_filename(0), episode_filename(1)]
    for index, path in enumerate(paths):
        episode = load_episode(path)
        assert episode["policy"] == "random"
        assert episode["seed"] == episode_seed(0, index)
        assert episode["observation"].shape == (50, 64, 64, 3)
        assert episode["done"].tolist() == [False] * 49 + [True]
    assert (sampled / "sample_policy-config.json").is_file()


def test_stored_frames_are_under_2_kb(sampled):
    paths = list_episodes(sampled)
    frames = sum(len(load_episode(p)["action"]) for p in paths)
    assert sum(p.stat().st_size for p in paths) / frames < 2048


def test_replaying_stored_actions_in_stock_carracing_reproduces_the_episode(sampled):
    for path in list_episodes(sampled):
        episode = load_episode(path)
        env = gymnasium.make("CarRacing-v3")
        frame, _ = env.reset(seed=episode["seed"])
        for t, action in enumerate(episode["action"]):
            # o_t is the observation that a_t was chosen on: no off-by-one.
            np.testing.assert_array_equal(preprocess_frame(frame), episode["observation"][t])
            frame, reward, terminated, _, _ = env.step(action)
            assert np.float32(reward) == episode["reward"][t]
            assert not terminated
        env.close()


def test_rerun_skips_complete_episodes_and_start_episode_begins_later(sampled, capsys):
    home = sampled.parent
    before = {p.name: p.stat().st_mtime_ns for p in list_episodes(sampled)}
    sample(home, "--episodes", "4", "--start_episode", "1", "--num_process", "1")
    after = {p.name: p.stat().st_mtime_ns for p in list_episodes(sampled)}
    assert sorted(after) == [episode_filename(i) for i in range(4)]
    assert all(after[name] == mtime for name, mtime in before.items())
    assert load_episode(sampled / episode_filename(3))["seed"] == episode_seed(0, 3)
    summary = capsys.readouterr().out.strip().splitlines()[-1]
    assert summary.startswith("wrote 2 random episodes (100 frames,")
    assert "skipped 1 already complete" in summary and str(sampled) in summary


def test_a_rerun_samples_empty_and_damaged_episode_files_again(tmp_path, capsys):
    sample(tmp_path, "--episodes", "3", "--num-process", "1")
    paths = list_episodes(tmp_path / "random-rollouts")
    originals = [path.read_bytes() for path in paths]
    paths[0].write_bytes(b"")
    paths[2].write_bytes(originals[2][: len(originals[2]) // 2])  # truncated
    capsys.readouterr()
    sample(tmp_path, "--episodes", "3", "--num-process", "1")
    output = capsys.readouterr()
    assert [path.read_bytes() for path in paths] == originals
    assert output.err.count("is damaged") == 2 and str(paths[2]) in output.err
    assert "wrote 2 random episodes" in output.out and "skipped 1 already complete" in output.out


def test_brownian_policy_writes_its_own_directory(tmp_path):
    sample(tmp_path, "--policy", "brownian", "--episodes", "1", "--num-process", "1", "--seed", "0")
    (path,) = list_episodes(tmp_path / "brownian-rollouts")
    episode = load_episode(path)
    assert episode["policy"] == "brownian" and episode["seed"] == episode_seed(0, 0)
    steps = np.abs(np.diff(episode["action"], axis=0))
    assert steps.max() < 6 * np.sqrt(1 / 50)


def test_dataset_names_a_later_iterations_episodes_and_policies_are_never_mixed(tmp_path):
    import json
    import os

    from worldmodels import layout

    sample(tmp_path, "--policy", "brownian", "--episodes", "1", "--num-process", "1")
    sample(
        tmp_path, "--policy", "random", "--dataset", "brownian-2", "--episodes", "1",
        "--num-process", "1",
    )  # fmt: skip
    (path,) = list_episodes(tmp_path / "brownian-2-rollouts")
    assert load_episode(path)["policy"] == "random"
    recorded = json.loads(layout.sampling_config(tmp_path, "brownian-2").read_text())
    assert recorded["command"]["dataset"] == "brownian-2"
    assert recorded["command"]["policy"] == "random"

    with pytest.raises(SystemExit, match="policy random, not brownian"):
        sample(tmp_path, "--policy", "brownian", "--dataset", "brownian-2", "--episodes", "2")
    assert list_episodes(tmp_path / "brownian-2-rollouts") == [path]

    # Datasets come in the order their first episodes were written, whatever their names.
    for dataset, written in (("brownian", 2000), ("brownian-2", 1000)):
        os.utime(layout.rollouts(tmp_path, dataset) / episode_filename(0), (written, written))
    (tmp_path / "notes-rollouts").mkdir()  # no sampling config: not a dataset
    assert layout.datasets(tmp_path) == ["brownian-2", "brownian"]


@pytest.mark.parametrize(
    "flags, message",
    [
        (["--episodes", "0"], "--episodes"),
        (["--episodes", "3", "--start-episode", "3"], "--start-episode 3"),
        (["--num-process", "-1"], "--num-process"),
        (["--seed", "-2"], "--seed"),
        (["--policy", "expert"], "--policy"),
        (["--dataset", "Controller 3"], "--dataset"),
        (["--dataset", "../elsewhere"], "--dataset"),
    ],
)
def test_bad_flags_are_named(tmp_path, capsys, flags, message):
    with pytest.raises(SystemExit) as exited:
        sample(tmp_path, *flags)
    assert exited.value.code == 2
    assert message in capsys.readouterr().err


def test_episode_seeds_are_deterministic_distinct_and_use_seed_zero():
    seeds = [episode_seed(0, i) for i in range(100)]
    assert seeds == [episode_seed(0, i) for i in range(100)]
    assert len(set(seeds)) == 100
    assert seeds != [episode_seed(1, i) for i in range(100)]


def test_white_noise_is_uniform_over_the_action_space():
    space = make_env(EnvParams(episode_length=1)).action_space
    actions = white_noise_actions(space, seed=0)
    sampled = np.array([next(actions) for _ in range(20_000)])
    assert sampled.dtype == np.float32
    np.testing.assert_allclose(sampled.min(axis=0), space.low, atol=1e-3)
    np.testing.assert_allclose(sampled.max(axis=0), space.high, atol=1e-3)
    np.testing.assert_allclose(sampled.mean(axis=0), (space.low + space.high) / 2, atol=0.02)


def test_brownian_increments_are_gaussian_with_variance_dt():
    unbounded = gymnasium.spaces.Box(-1e6, 1e6, (3,), np.float32)
    dt = 1 / 50
    walk = brownian_actions(unbounded, seed=0, dt=dt)
    increments = np.diff([next(walk) for _ in range(20_000)], axis=0)
    np.testing.assert_allclose(increments.mean(axis=0), 0, atol=0.01)
    np.testing.assert_allclose(increments.var(axis=0), dt, rtol=0.05)


def test_brownian_actions_stay_in_the_action_space():
    space = make_env(EnvParams(episode_length=1)).action_space
    walk = brownian_actions(space, seed=0, dt=1 / 50)
    actions = np.array([next(walk) for _ in range(5_000)])
    assert actions.dtype == np.float32
    assert np.all(actions >= space.low) and np.all(actions <= space.high)
    assert np.all(actions.min(axis=0) == space.low)  # the walk does reach the bounds


def test_run_episode_pairs_each_action_with_the_observation_it_was_chosen_on():
    env = make_env(EnvParams(episode_length=6))
    seen = []

    def recording_policy():
        while True:
            seen.append(env.unwrapped.t)  # the env's clock when the action is chosen
            yield np.array([0.0, 1.0, 0.0], np.float32)

    episode = run_episode(env, recording_policy(), seed=0)
    fresh = make_env(EnvParams(episode_length=6))
    first, _ = fresh.reset(seed=0)
    np.testing.assert_array_equal(episode["observation"][0], first)
    second, *_ = fresh.step(np.array([0.0, 1.0, 0.0], np.float32))
    np.testing.assert_array_equal(episode["observation"][1], second)
    # Action t was chosen when the env's clock read t + 1 steps of 1/50 s (reset takes one
    # step itself): once per step, before that step, and never after the last one.
    np.testing.assert_allclose(seen, (np.arange(6) + 1) / 50)
    assert len(episode["action"]) == 6


def test_episodes_record_their_seed_scheme_and_an_older_scheme_is_not_mixed_in(tmp_path):
    import tensorflow as tf

    from worldmodels.seeds import SEED_SCHEME

    sample(tmp_path, "--episodes", "1", "--num-process", "1")
    assert load_episode(tmp_path / "random-rollouts" / episode_filename(0))["seed_scheme"] == 2
    assert SEED_SCHEME == 2

    # A record as seed scheme 1 wrote them: no seed_scheme feature.
    old = tmp_path / "old"
    path = old / "random-rollouts" / episode_filename(0)
    path.parent.mkdir(parents=True)
    features = {
        "length": tf.train.Feature(int64_list=tf.train.Int64List(value=[1])),
        "seed": tf.train.Feature(int64_list=tf.train.Int64List(value=[3])),
        "policy": tf.train.Feature(bytes_list=tf.train.BytesList(value=[b"random"])),
        "observation": tf.train.Feature(bytes_list=tf.train.BytesList(value=[bytes(64 * 64 * 3)])),
        "action": tf.train.Feature(float_list=tf.train.FloatList(value=[0.0, 0.0, 0.0])),
        "reward": tf.train.Feature(float_list=tf.train.FloatList(value=[0.0])),
        "done": tf.train.Feature(int64_list=tf.train.Int64List(value=[1])),
    }
    example = tf.train.Example(features=tf.train.Features(feature=features))
    with tf.io.TFRecordWriter(str(path), tf.io.TFRecordOptions(compression_type="GZIP")) as w:
        w.write(example.SerializeToString())
    assert load_episode(path)["seed_scheme"] == 1
    with pytest.raises(SystemExit, match="seed scheme 1"):
        sample(old, "--episodes", "2", "--num-process", "1")
    assert list_episodes(old / "random-rollouts") == [path]
