"""Episode records: one GZIP-compressed TFRecord file per episode.

Each file holds a single `tf.train.Example` with
  observation  bytes    T x 64 x 64 x 3 uint8, row-major (o_t: the frame a_t was chosen on)
  action       floats   T x 3 float32
  reward       floats   T float32 (r_t: the reward for taking a_t)
  done         ints     T, 1 on the last step of an episode that terminated or was truncated
  length       int      T
  seed         int      the env seed: `reset(seed=seed)` then the actions replays the episode
  policy       bytes    the name of the policy that chose the actions
Frames are raw uint8 and the file is GZIP-compressed: about 1 KB per frame instead of the
~49 KB of float32 features. Files are written atomically, so a file named `episode-*.tfrecord`
is always complete; a damaged one is reported by name.
"""

from __future__ import annotations

import contextlib
import os
import re
import sys
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np
import tensorflow as tf

from worldmodels.files import atomic_path

OBSERVATION_SHAPE = (64, 64, 3)
ACTION_DIM = 3
COMPRESSION = "GZIP"
EPISODE_PATTERN = "episode-*.tfrecord"
READ_BUFFER_BYTES = 1 << 20
CORRUPT_MESSAGE = "corrupt or truncated episode record:"

_FEATURES = {
    "observation": tf.io.FixedLenFeature([], tf.string),
    "action": tf.io.VarLenFeature(tf.float32),
    "reward": tf.io.VarLenFeature(tf.float32),
    "done": tf.io.VarLenFeature(tf.int64),
    "length": tf.io.FixedLenFeature([], tf.int64),
    "seed": tf.io.FixedLenFeature([], tf.int64),
    "policy": tf.io.FixedLenFeature([], tf.string),
}


class CorruptEpisodeError(IOError):
    """An episode file could not be read back whole."""

    def __init__(self, path: str | os.PathLike):
        self.path = str(path)
        super().__init__(
            f"{CORRUPT_MESSAGE} {self.path} (delete it and sample the episode again, "
            "or pass on_corrupt='skip' to leave it out)"
        )


def episode_filename(index: int) -> str:
    """The file name of episode `index` in a rollouts directory."""
    return f"episode-{index:06d}.tfrecord"


def list_episodes(directory: str | os.PathLike) -> list[Path]:
    """The complete episode files in `directory`, sorted by name; temporary files excluded."""
    return sorted(Path(directory).glob(EPISODE_PATTERN))


def save_episode(path: str | os.PathLike, episode: dict) -> int:
    """Writes `episode` (the keys of `load_episode`) to `path` atomically; returns its bytes.

    Raises ValueError naming the key when an array has the wrong shape or dtype.
    """
    observation = np.asarray(episode["observation"])
    length = len(observation)
    expected = {
        "observation": (observation, (length, *OBSERVATION_SHAPE)),
        "action": (np.asarray(episode["action"], np.float32), (length, ACTION_DIM)),
        "reward": (np.asarray(episode["reward"], np.float32), (length,)),
        "done": (np.asarray(episode["done"], bool), (length,)),
    }
    for key, (array, shape) in expected.items():
        if array.shape != shape:
            raise ValueError(f"episode[{key!r}] has shape {array.shape}, expected {shape}")
    if observation.dtype != np.uint8:
        raise ValueError(f"episode['observation'] has dtype {observation.dtype}, expected uint8")
    if length == 0:
        raise ValueError("an episode needs at least one step")

    def floats(values):
        return tf.train.Feature(float_list=tf.train.FloatList(value=values.ravel()))

    def ints(values):
        return tf.train.Feature(int64_list=tf.train.Int64List(value=values))

    def bytes_(value):
        return tf.train.Feature(bytes_list=tf.train.BytesList(value=[value]))

    example = tf.train.Example(
        features=tf.train.Features(
            feature={
                "observation": bytes_(observation.tobytes()),
                "action": floats(expected["action"][0]),
                "reward": floats(expected["reward"][0]),
                "done": ints(expected["done"][0].astype(np.int64)),
                "length": ints([length]),
                "seed": ints([int(episode["seed"])]),
                "policy": bytes_(str(episode["policy"]).encode()),
            }
        )
    )
    with atomic_path(path) as temporary:
        options = tf.io.TFRecordOptions(compression_type=COMPRESSION)
        with tf.io.TFRecordWriter(str(temporary), options) as writer:
            writer.write(example.SerializeToString())
    return os.path.getsize(path)


def _read_record(path: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
    """(path, serialized Example), the Example empty when the file is damaged."""
    records = tf.data.TFRecordDataset(
        path, compression_type=COMPRESSION, buffer_size=READ_BUFFER_BYTES
    )
    # A damaged GZIP stream or record raises DataLossError without naming the file; swallow
    # it here and report the file by name below.
    serialized = records.ignore_errors().take(1).reduce(tf.constant(b""), lambda _, record: record)
    return path, serialized


def _is_intact(path: tf.Tensor, serialized: tf.Tensor) -> tf.Tensor:
    return tf.strings.length(serialized) > 0


def _assert_intact(path: tf.Tensor, serialized: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
    check = tf.debugging.Assert(_is_intact(path, serialized), [CORRUPT_MESSAGE, path])
    with tf.control_dependencies([check]):
        return path, tf.identity(serialized)


def _keep_if_intact_else_warn(path: tf.Tensor, serialized: tf.Tensor) -> tf.Tensor:
    def warn():
        tf.print("warning: skipping", CORRUPT_MESSAGE, path, output_stream=sys.stderr)
        return tf.constant(False)

    return tf.cond(_is_intact(path, serialized), lambda: tf.constant(True), warn)


def _parse_episode(path: tf.Tensor, serialized: tf.Tensor) -> dict[str, tf.Tensor]:
    features = tf.io.parse_single_example(serialized, _FEATURES)
    length = features["length"]
    pixels = tf.io.decode_raw(features["observation"], tf.uint8)
    action = tf.sparse.to_dense(features["action"])
    sizes_match = tf.reduce_all(
        [
            tf.size(pixels, tf.int64) == length * int(np.prod(OBSERVATION_SHAPE)),
            tf.size(action, tf.int64) == length * ACTION_DIM,
            tf.size(features["reward"].values, tf.int64) == length,
            tf.size(features["done"].values, tf.int64) == length,
        ]
    )
    check = tf.debugging.Assert(sizes_match, [CORRUPT_MESSAGE, path, "(array sizes differ)"])
    with tf.control_dependencies([check]):
        return {
            "observation": tf.reshape(pixels, [-1, *OBSERVATION_SHAPE]),
            "action": tf.reshape(action, [-1, ACTION_DIM]),
            "reward": tf.sparse.to_dense(features["reward"]),
            "done": tf.cast(tf.sparse.to_dense(features["done"]), tf.bool),
            "seed": features["seed"],
            "policy": features["policy"],
            "path": path,
        }


def load_episode(path: str | os.PathLike) -> dict:
    """Reads one episode file into numpy.

    Returns a dict with `observation` (uint8, T x 64 x 64 x 3), `action` (float32, T x 3),
    `reward` (float32, T), `done` (bool, T), `seed` (int) and `policy` (str).
    Raises FileNotFoundError, or CorruptEpisodeError naming the file.
    """
    if not Path(path).is_file():
        raise FileNotFoundError(f"no episode file at {path}")
    path_tensor, serialized = _read_record(tf.constant(str(path)))
    if not serialized.numpy():
        raise CorruptEpisodeError(path)
    try:
        episode = _parse_episode(path_tensor, serialized)
    except tf.errors.InvalidArgumentError:
        raise CorruptEpisodeError(path) from None
    return {
        "observation": episode["observation"].numpy(),
        "action": episode["action"].numpy(),
        "reward": episode["reward"].numpy(),
        "done": episode["done"].numpy(),
        "seed": int(episode["seed"]),
        "policy": episode["policy"].numpy().decode(),
    }


def episode_dataset(
    paths: Sequence[str | os.PathLike],
    shuffle: bool = False,
    seed: int | None = None,
    on_corrupt: str = "error",
) -> tf.data.Dataset:
    """Whole episodes of variable length, one element per file, as dicts of tensors.

    Keys as `load_episode`, plus `path`. `shuffle` reorders the files every epoch.
    `on_corrupt`: "error" stops iteration with an error naming the damaged file (wrap the loop
    in `corrupt_episodes_raise()` to get a CorruptEpisodeError); "skip" leaves it out with a
    warning on stderr.
    """
    if on_corrupt not in ("error", "skip"):
        raise ValueError(f"on_corrupt must be 'error' or 'skip', got {on_corrupt!r}")
    if not paths:
        raise ValueError("episode_dataset needs at least one episode file")
    files = tf.data.Dataset.from_tensor_slices([str(path) for path in paths])
    if shuffle:
        files = files.shuffle(len(paths), seed=seed, reshuffle_each_iteration=True)
    records = files.map(_read_record, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    if on_corrupt == "error":
        records = records.map(_assert_intact)
    else:
        records = records.filter(_keep_if_intact_else_warn)
    return records.map(_parse_episode, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)


def frame_dataset(
    paths: Sequence[str | os.PathLike],
    batch_size: int,
    shuffle_buffer: int = 10_000,
    episodes_in_flight: int = 16,
    seed: int | None = None,
    on_corrupt: str = "error",
) -> tf.data.Dataset:
    """Batches of single frames, float32 in [0, 1], shape B x 64 x 64 x 3, for the VAE.

    Frames are mixed across `episodes_in_flight` files read in parallel, then through a
    `shuffle_buffer`-frame buffer; file order is reshuffled every epoch. Memory is bounded by
    those two numbers (~12 KB per frame), never by the size of the dataset.
    """
    episodes = episode_dataset(paths, shuffle=True, seed=seed, on_corrupt=on_corrupt)
    frames = episodes.interleave(
        lambda episode: tf.data.Dataset.from_tensor_slices(episode["observation"]),
        cycle_length=episodes_in_flight,
        num_parallel_calls=tf.data.AUTOTUNE,
        deterministic=False,
    )
    return (
        frames.shuffle(shuffle_buffer, seed=seed, reshuffle_each_iteration=True)
        .batch(batch_size)
        .map(lambda batch: tf.cast(batch, tf.float32) / 255.0, num_parallel_calls=tf.data.AUTOTUNE)
        .prefetch(tf.data.AUTOTUNE)
    )


@contextlib.contextmanager
def corrupt_episodes_raise() -> Iterator[None]:
    """Turns TensorFlow's error for a damaged episode file into a CorruptEpisodeError."""
    try:
        yield
    except tf.errors.InvalidArgumentError as error:
        found = re.search(re.escape(CORRUPT_MESSAGE) + r"\] \[(.*?)\]", error.message)
        if found is None:
            raise
        raise CorruptEpisodeError(found.group(1)) from None
