"""Episode records: one GZIP-compressed TFRecord file per episode.

Each file holds a single `tf.train.Example` of per-step arrays of one length T and three
scalars. Stage 1 writes episodes (`EPISODE`):
  observation  T x 64 x 64 x 3 uint8, raw bytes (o_t: the frame a_t was chosen on)
  action       T x 3 float32
  reward       T float32 (r_t: the reward for taking a_t)
  done         T bool, true on the last step of an episode that terminated or was truncated
stage 3 writes the VAE's encoding of an episode (`LATENT_STATS`):
  mu, logvar   T x 32 float32
  action, reward, done   the episode's own
and both carry
  length       T
  seed         the env seed: `reset(seed=seed)` then the actions replays the episode
  seed_scheme  how `seed` was derived (worldmodels.seeds.SEED_SCHEME; absent, so 1, in records
               written before scheme 2)
  policy       the name of the policy that chose the actions
Frames are raw uint8 and the file is GZIP-compressed: about 1 KB per frame instead of the
~49 KB of float32 features. Files are written atomically, so a file named `episode-*.tfrecord`
is always complete; a damaged one is reported by name.
"""

from __future__ import annotations

import contextlib
import os
import re
import sys
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import tensorflow as tf

from worldmodels.files import atomic_path
from worldmodels.images import unit_frames
from worldmodels.layout import EPISODE_PATTERN
from worldmodels.seeds import SEED_SCHEME

OBSERVATION_SHAPE = (64, 64, 3)
ACTION_DIM = 3
LATENT_DIM = 32
COMPRESSION = "GZIP"
READ_BUFFER_BYTES = 1 << 20
CORRUPT_MESSAGE = "corrupt or truncated episode record:"


@dataclass(frozen=True)
class RecordFormat:
    """Per-step arrays of a record: name -> (dtype, shape of one step)."""

    arrays: dict[str, tuple[type, tuple[int, ...]]]

    def features(self) -> dict:
        spec = {
            "length": tf.io.FixedLenFeature([], tf.int64),
            "seed": tf.io.FixedLenFeature([], tf.int64),
            "seed_scheme": tf.io.FixedLenFeature([], tf.int64, default_value=1),
            "policy": tf.io.FixedLenFeature([], tf.string),
        }
        for name, (dtype, _) in self.arrays.items():
            if dtype is np.uint8:
                spec[name] = tf.io.FixedLenFeature([], tf.string)
            else:
                spec[name] = tf.io.VarLenFeature(tf.float32 if dtype is np.float32 else tf.int64)
        return spec


EPISODE = RecordFormat(
    {
        "observation": (np.uint8, OBSERVATION_SHAPE),
        "action": (np.float32, (ACTION_DIM,)),
        "reward": (np.float32, ()),
        "done": (bool, ()),
    }
)
LATENT_STATS = RecordFormat(
    {
        "mu": (np.float32, (LATENT_DIM,)),
        "logvar": (np.float32, (LATENT_DIM,)),
        "action": (np.float32, (ACTION_DIM,)),
        "reward": (np.float32, ()),
        "done": (bool, ()),
    }
)


class CorruptEpisodeError(IOError):
    """An episode file could not be read back whole."""

    def __init__(self, path: str | os.PathLike):
        self.path = str(path)
        super().__init__(
            f"{CORRUPT_MESSAGE} {self.path} (delete it and sample the episode again, or leave "
            "it out: --on-corrupt skip on the command line, on_corrupt='skip' in Python)"
        )


def episode_filename(index: int) -> str:
    """The file name of episode `index` in a rollouts directory."""
    return f"episode-{index:06d}.tfrecord"


def list_episodes(directory: str | os.PathLike) -> list[Path]:
    """The complete episode files in `directory`, sorted by name; temporary files excluded."""
    return sorted(Path(directory).expanduser().glob(EPISODE_PATTERN))


def encode_record(record: dict, record_format: RecordFormat) -> bytes:
    """The bytes of the file `save_record` writes for `record` (its format's arrays, `seed`,
    `policy`): how a worker without the home hands an episode to the process that writes it.

    Raises ValueError naming the key when an array has the wrong shape or dtype.
    """
    first = next(iter(record_format.arrays))
    length = len(record[first])
    if length == 0:
        raise ValueError("a record needs at least one step")
    feature = {
        "length": _ints([length]),
        "seed": _ints([int(record["seed"])]),
        "seed_scheme": _ints([int(record.get("seed_scheme", SEED_SCHEME))]),
        "policy": _bytes(str(record["policy"]).encode()),
    }
    for name, (dtype, step_shape) in record_format.arrays.items():
        array = np.asarray(record[name])
        if array.shape != (length, *step_shape):
            raise ValueError(
                f"record[{name!r}] has shape {array.shape}, expected {(length, *step_shape)}"
            )
        if dtype is np.uint8:
            if array.dtype != np.uint8:
                raise ValueError(f"record[{name!r}] has dtype {array.dtype}, expected uint8")
            feature[name] = _bytes(array.tobytes())
        elif dtype is np.float32:
            feature[name] = tf.train.Feature(float_list=tf.train.FloatList(value=array.ravel()))
        else:
            feature[name] = _ints(array.astype(np.int64).ravel())
    example = tf.train.Example(features=tf.train.Features(feature=feature))
    # Deterministic: map entries sorted, so one episode always gives the same bytes, whichever
    # process writes it. TFRecordWriter frames and compresses only into a file: a scratch one.
    with tempfile.TemporaryDirectory() as scratch:
        path = os.path.join(scratch, "record.tfrecord")
        options = tf.io.TFRecordOptions(compression_type=COMPRESSION)
        with tf.io.TFRecordWriter(path, options) as writer:
            writer.write(example.SerializeToString(deterministic=True))
        return Path(path).read_bytes()


def write_record_file(path: str | os.PathLike, encoded: bytes) -> int:
    """Writes the bytes of `encode_record` to `path` atomically; returns their size."""
    with atomic_path(path) as temporary:
        temporary.write_bytes(encoded)
    return len(encoded)


def save_record(path: str | os.PathLike, record: dict, record_format: RecordFormat) -> int:
    """Writes `record` atomically (see `encode_record`); returns its bytes."""
    return write_record_file(path, encode_record(record, record_format))


def load_record(path: str | os.PathLike, record_format: RecordFormat) -> dict:
    """Reads one record file into numpy: its format's arrays, `seed` and `seed_scheme` (int),
    `policy` (str).

    Raises FileNotFoundError, or CorruptEpisodeError naming the file.
    """
    if not Path(path).is_file():
        raise FileNotFoundError(f"no episode file at {path}")
    path_tensor, serialized = _read_record(tf.constant(str(path)))
    if not serialized.numpy():
        raise CorruptEpisodeError(path)
    try:
        record = _parse(path_tensor, serialized, record_format)
    except tf.errors.InvalidArgumentError:
        raise CorruptEpisodeError(path) from None
    loaded = {name: record[name].numpy() for name in record_format.arrays}
    loaded["seed"] = int(record["seed"])
    loaded["seed_scheme"] = int(record["seed_scheme"])
    loaded["policy"] = record["policy"].numpy().decode()
    return loaded


def readable_records(
    paths: Sequence[str | os.PathLike],
    record_format: RecordFormat,
    on_corrupt: str = "error",
) -> Iterator[tuple[int, dict]]:
    """(position in `paths`, `load_record`) of each of `paths` that reads back whole, in order.

    A damaged file raises CorruptEpisodeError (`on_corrupt="error"`) or is skipped with a
    warning on stderr (`"skip"`).
    """
    for position, path in enumerate(paths):
        try:
            record = load_record(path, record_format)
        except CorruptEpisodeError as error:
            if on_corrupt == "error":
                raise
            warn_skipping(error.path)
            continue
        yield position, record


def load_first_episode(paths: Sequence[str | os.PathLike], on_corrupt: str = "error") -> dict:
    """`load_episode` of the first of `paths` that reads back whole (see `readable_records`);
    FileNotFoundError when none is."""
    for _, episode in readable_records(paths, EPISODE, on_corrupt):
        return episode
    raise FileNotFoundError(f"no readable episode among {len(paths)} files")


def record_dataset(
    paths: Sequence[str | os.PathLike],
    record_format: RecordFormat,
    shuffle: bool = False,
    seed: int | None = None,
    on_corrupt: str = "error",
    parallel_reads: int = 4,
) -> tf.data.Dataset:
    """Whole records of variable length, one element per file, as dicts of tensors.

    Keys as `load_record`, plus `path`. `shuffle` reorders the files on every iteration.
    `parallel_reads` files are read and decoded at once (each episode is ~12 MB decoded).
    `on_corrupt`: "error" stops iteration with an error naming the damaged file (wrap the loop
    in `corrupt_episodes_raise()` to get a CorruptEpisodeError); "skip" leaves it out with a
    warning on stderr.
    """
    if on_corrupt not in ("error", "skip"):
        raise ValueError(f"on_corrupt must be 'error' or 'skip', got {on_corrupt!r}")
    if not paths:
        raise ValueError("a record dataset needs at least one file")
    files = tf.data.Dataset.from_tensor_slices([str(path) for path in paths])
    if shuffle:
        files = files.shuffle(len(paths), seed=seed, reshuffle_each_iteration=True)
    records = files.map(_read_record, num_parallel_calls=parallel_reads, deterministic=True)
    if on_corrupt == "error":
        records = records.map(_assert_intact)
    else:
        records = records.filter(_keep_if_intact_else_warn)
    return records.map(
        lambda path, serialized: _parse(path, serialized, record_format),
        num_parallel_calls=parallel_reads,
        deterministic=True,
    )


def save_episode(path: str | os.PathLike, episode: dict) -> int:
    """Writes an episode (the keys of `load_episode`) atomically; returns its bytes."""
    return save_record(path, episode, EPISODE)


def load_episode(path: str | os.PathLike) -> dict:
    """Reads one episode: `observation` (uint8, T x 64 x 64 x 3), `action` (float32, T x 3),
    `reward` (float32, T), `done` (bool, T), `seed` (int) and `policy` (str)."""
    return load_record(path, EPISODE)


def episode_dataset(paths, shuffle=False, seed=None, on_corrupt="error") -> tf.data.Dataset:
    """`record_dataset` of episodes."""
    return record_dataset(paths, EPISODE, shuffle, seed, on_corrupt)


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
    `shuffle_buffer`-frame buffer; file order is reshuffled on every iteration. Memory is
    bounded by those two numbers (~12 KB per frame) and the few episodes being read, never by
    the size of the dataset. With a `seed` the order is a fixed function of it, so a run can
    skip to where it stopped.
    """
    episodes = episode_dataset(paths, shuffle=True, seed=seed, on_corrupt=on_corrupt)
    # Sequential interleave: it holds exactly `episodes_in_flight` episodes, where a parallel
    # one would prefetch more of them the more files there are.
    frames = episodes.interleave(
        lambda episode: tf.data.Dataset.from_tensor_slices(episode["observation"]),
        cycle_length=episodes_in_flight,
    )
    # A slice shares its episode's buffer: without a copy, one frame waiting in the shuffle
    # buffer would keep its whole ~12 MB episode alive, and memory would grow with the number
    # of episodes the buffer draws from.
    frames = frames.map(
        lambda frame: tf.raw_ops.DeepCopy(x=frame), num_parallel_calls=tf.data.AUTOTUNE
    )
    return (
        frames.shuffle(shuffle_buffer, seed=seed, reshuffle_each_iteration=True)
        .batch(batch_size)
        .map(unit_frames, num_parallel_calls=tf.data.AUTOTUNE)
        .prefetch(tf.data.AUTOTUNE)
    )


@contextlib.contextmanager
def corrupt_episodes_raise() -> Iterator[None]:
    """Turns TensorFlow's error for a damaged record file into a CorruptEpisodeError."""
    try:
        yield
    except tf.errors.InvalidArgumentError as error:
        found = re.search(re.escape(CORRUPT_MESSAGE) + r"\] \[(.*?)\]", error.message)
        if found is None:
            raise
        raise CorruptEpisodeError(found.group(1)) from None


def _ints(values) -> tf.train.Feature:
    return tf.train.Feature(int64_list=tf.train.Int64List(value=values))


def _bytes(value: bytes) -> tf.train.Feature:
    return tf.train.Feature(bytes_list=tf.train.BytesList(value=[value]))


def _read_record(path: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
    """(path, serialized Example), the Example empty when the file is damaged."""
    records = tf.data.TFRecordDataset(
        path, compression_type=COMPRESSION, buffer_size=READ_BUFFER_BYTES
    )
    # A damaged GZIP stream or record raises DataLossError without naming the file; swallow
    # it here and report the file by name instead.
    serialized = records.ignore_errors().take(1).reduce(tf.constant(b""), lambda _, record: record)
    return path, serialized


def _is_intact(serialized: tf.Tensor) -> tf.Tensor:
    return tf.strings.length(serialized) > 0


def _assert_intact(path: tf.Tensor, serialized: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
    check = tf.debugging.Assert(_is_intact(serialized), [CORRUPT_MESSAGE, path])
    with tf.control_dependencies([check]):
        return path, tf.identity(serialized)


def _keep_if_intact_else_warn(path: tf.Tensor, serialized: tf.Tensor) -> tf.Tensor:
    def warn():
        def report(path: tf.Tensor) -> bool:
            warn_skipping(path.numpy().decode())
            return False

        return tf.ensure_shape(tf.py_function(report, [path], Tout=tf.bool), [])

    return tf.cond(_is_intact(serialized), lambda: tf.constant(True), warn)


_REPORTED: set[str] = set()


def warn_skipping(path: str) -> None:
    """Says on stderr that the damaged file `path` is left out: once per process, however
    many passes over the data meet it (every epoch, the held-out episodes, a preview)."""
    if path not in _REPORTED:
        _REPORTED.add(path)
        print(f"warning: skipping {CORRUPT_MESSAGE} {path}", file=sys.stderr, flush=True)


def _parse(path: tf.Tensor, serialized: tf.Tensor, record_format: RecordFormat) -> dict:
    features = tf.io.parse_single_example(serialized, record_format.features())
    length = features["length"]
    flat = {}
    for name, (dtype, _) in record_format.arrays.items():
        if dtype is np.uint8:
            flat[name] = tf.io.decode_raw(features[name], tf.uint8)
        else:
            flat[name] = tf.sparse.to_dense(features[name])
    sizes_match = [
        tf.size(flat[name], tf.int64) == length * int(np.prod(step_shape))
        for name, (_, step_shape) in record_format.arrays.items()
    ]
    check = tf.debugging.Assert(
        tf.reduce_all(sizes_match), [CORRUPT_MESSAGE, path, "(array lengths differ)"]
    )
    parsed = {
        "seed": features["seed"],
        "seed_scheme": features["seed_scheme"],
        "policy": features["policy"],
        "path": path,
    }
    with tf.control_dependencies([check]):
        for name, (dtype, step_shape) in record_format.arrays.items():
            array = tf.reshape(flat[name], [-1, *step_shape])
            parsed[name] = tf.cast(array, tf.bool) if dtype is bool else array
    return parsed
