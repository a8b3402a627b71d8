import numpy as np
import pytest
import tensorflow as tf
from conftest import synthetic_episode

from worldmodels.data.tf_records import (
    CorruptEpisodeError,
    corrupt_episodes_raise,
    episode_dataset,
    episode_filename,
    frame_dataset,
    list_episodes,
    load_episode,
    save_episode,
)

LENGTHS = (7, 1, 13)


@pytest.fixture
def episodes_on_disk(tmp_path):
    """Three episodes of different lengths; returns (directory, {path: episode})."""
    saved = {}
    for index, length in enumerate(LENGTHS):
        path = tmp_path / episode_filename(index)
        episode = synthetic_episode(length, seed=index, policy=f"policy-{index}")
        save_episode(path, episode)
        saved[str(path)] = episode
    return tmp_path, saved


def assert_same_episode(loaded, original):
    for key in ("observation", "action", "reward", "done"):
        assert loaded[key].dtype == original[key].dtype, key
        np.testing.assert_array_equal(loaded[key], original[key], err_msg=key)
    assert loaded["seed"] == original["seed"]
    assert loaded["policy"] == original["policy"]


def test_round_trip_is_bit_exact_for_variable_lengths(episodes_on_disk):
    directory, saved = episodes_on_disk
    paths = list_episodes(directory)
    assert [p.name for p in paths] == [episode_filename(i) for i in range(len(LENGTHS))]
    for path in paths:
        assert_same_episode(load_episode(path), saved[str(path)])


def test_large_seeds_survive(tmp_path):
    episode = synthetic_episode(2, seed=2**32 - 1)
    save_episode(tmp_path / "e.tfrecord", episode)
    assert load_episode(tmp_path / "e.tfrecord")["seed"] == 2**32 - 1


def test_save_rejects_wrong_shapes_and_dtypes(tmp_path):
    episode = synthetic_episode(4)
    with pytest.raises(ValueError, match="action"):
        save_episode(tmp_path / "e.tfrecord", {**episode, "action": episode["action"][:3]})
    with pytest.raises(ValueError, match="uint8"):
        save_episode(
            tmp_path / "e.tfrecord", {**episode, "observation": episode["observation"] / 255}
        )
    assert not list(tmp_path.iterdir())


def test_interrupted_write_leaves_nothing_a_reader_counts(tmp_path, monkeypatch):
    def write_then_die(self, record):
        raise KeyboardInterrupt

    monkeypatch.setattr(tf.io.TFRecordWriter, "write", write_then_die)
    with pytest.raises(KeyboardInterrupt):
        save_episode(tmp_path / episode_filename(0), synthetic_episode(5))
    assert list(tmp_path.iterdir()) == []


def test_temporary_file_of_a_killed_writer_is_not_an_episode(tmp_path):
    save_episode(tmp_path / episode_filename(0), synthetic_episode(3))
    # What a writer killed with SIGKILL leaves behind: its hidden temporary file.
    (tmp_path / f".{episode_filename(1)}.4242.tmp").write_bytes(b"\x1f\x8b partial")
    assert list_episodes(tmp_path) == [tmp_path / episode_filename(0)]


def damage(path, how):
    data = path.read_bytes()
    if how == "truncated":
        path.write_bytes(data[: len(data) // 2])
    elif how == "flipped":
        flipped = bytearray(data)
        flipped[len(data) // 2] ^= 0xFF
        path.write_bytes(bytes(flipped))
    else:
        path.write_bytes(b"")


@pytest.mark.parametrize("how", ["truncated", "flipped", "empty"])
def test_damaged_record_is_reported_by_name(episodes_on_disk, how):
    directory, _ = episodes_on_disk
    bad = directory / episode_filename(1)
    good = directory / episode_filename(0)
    damage(bad, how)
    with pytest.raises(CorruptEpisodeError, match=episode_filename(1)):
        load_episode(bad)
    with pytest.raises(CorruptEpisodeError, match=episode_filename(1)) as raised:
        with corrupt_episodes_raise():
            list(episode_dataset([good, bad]))
    assert raised.value.path == str(bad)


def test_skip_mode_leaves_damaged_episodes_out(episodes_on_disk, capfd):
    directory, saved = episodes_on_disk
    bad = directory / episode_filename(2)
    damage(bad, "truncated")
    kept = [
        e["path"].numpy().decode()
        for e in episode_dataset(list_episodes(directory), on_corrupt="skip")
    ]
    assert kept == [p for p in saved if p != str(bad)]
    assert episode_filename(2) in capfd.readouterr().err


def test_missing_file_is_file_not_found(tmp_path):
    with pytest.raises(FileNotFoundError, match="nowhere"):
        load_episode(tmp_path / "nowhere.tfrecord")


def test_episode_dataset_keeps_variable_length_episodes_whole_and_separate(episodes_on_disk):
    directory, saved = episodes_on_disk
    for element in episode_dataset(list_episodes(directory)):
        original = saved[element["path"].numpy().decode()]
        loaded = {key: value.numpy() for key, value in element.items()}
        loaded["policy"] = loaded["policy"].decode()
        assert_same_episode(loaded, original)


def test_frame_dataset_yields_every_frame_once_per_epoch_scaled_and_reshuffled(episodes_on_disk):
    directory, saved = episodes_on_disk
    dataset = frame_dataset(list_episodes(directory), batch_size=4, shuffle_buffer=8, seed=1)
    expected = np.concatenate([e["observation"] for e in saved.values()]).astype(np.float32) / 255
    epochs = []
    for _ in range(3):
        batches = [batch.numpy() for batch in dataset]
        assert all(b.dtype == np.float32 and b.shape[1:] == (64, 64, 3) for b in batches)
        assert [len(b) for b in batches[:-1]] == [4] * (len(batches) - 1)
        epochs.append(np.concatenate(batches))
    for frames in epochs:
        assert len(frames) == sum(LENGTHS)
        # Same multiset of frames: sort by content, compare.
        order = np.lexsort(frames.reshape(len(frames), -1).T[:5])
        expected_order = np.lexsort(expected.reshape(len(expected), -1).T[:5])
        np.testing.assert_array_equal(frames[order], expected[expected_order])
    assert not all(np.array_equal(epochs[0], other) for other in epochs[1:])
