"""Seeds derived from a base seed, so that every piece of randomness can be replayed.

Every use of randomness draws from its own named `Stream`. A seed is a fixed function of
(base seed, stream, indices), hashed by numpy's SeedSequence with the stream and indices as its
spawn key. The key starts with the stream and the number of indices, so no two (stream,
indices) share a key: `derive_seed(0, s, 3)` and `derive_seed(0, s, 3, 0)` differ (a plain
`SeedSequence([base, *keys])` pads with zeros, which made them equal in seed scheme 1), and two
streams can meet only through a 63-bit hash collision. `tests/test_seeds.py` checks the first
10,000 seeds of every stream against each other.

Changing how seeds are derived changes which track a seed means, so everything that records
seeds also records `SEED_SCHEME`, and an old home is refused rather than mixed with new seeds.
"""

from __future__ import annotations

import enum

import numpy as np

# Version of the derivation below. 1: SeedSequence([base, *keys]), 32-bit (colliding streams).
SEED_SCHEME = 2
# The evaluation's base seed of the test tracks: the paper's protocol, every shipped card's score.
TEST_TRACKS_SEED = 0


class Stream(enum.IntEnum):
    """The project's independent streams of randomness, and the indices each one takes."""

    EPISODE_TRACKS = 1  # stage 1: the track of dataset episode i (all policies)         (i,)
    RANDOM_AGENT = 2  # stage 1, agent-random: the random V, M and C of episode i         (i,)
    TRAINING_TRACKS = 3  # stage 5: track j of generation g                               (g, j)
    TRAINING_EVALUATION_TRACKS = 4  # stage 5: track j of the mean's evaluation after g   (g, j)
    EVALUATION_TRACKS = 5  # `evaluate`: track j                                          (j,)
    OPTIMIZER = 6  # stage 5: CMA-ES's samples (), after a popsize change at generation g (g,)
    MODEL_INIT = 7  # initial weights of model m (Model)                                  (m,)
    DATA_ORDER = 8  # order of the training data of model m in epoch e                    (m, e)
    VALIDATION = 9  # the episodes model m holds out, and the noise of its validation loss (m,)
    PREDICTION = 10  # evaluate_memory: z of held-out episode i (i,), and M's own draws    ()
    ITERATION_DATA = 11  # pipeline: base seed of the episodes the agent samples in iter. k (k,)
    CONTROLLER_NOISE = 12  # sample_policy --parameter-noise: episode i's perturbation     (i,)


class Model(enum.IntEnum):
    """Index of a trained model in the MODEL_INIT and DATA_ORDER streams."""

    VAE = 0
    MEMORY = 1


SEED_BITS = 63  # fits the int64 of episode records and TensorFlow's seeds


def derive_seed(base_seed: int, stream: Stream, *indices: int, bits: int = SEED_BITS) -> int:
    """A `bits`-bit seed that is a fixed function of (base_seed, stream, *indices).

    `base_seed` and the indices are integers >= 0. `bits=32` is for APIs that take no more
    (numpy's legacy global seed, through `keras.utils.set_random_seed`).
    """
    if base_seed < 0 or any(index < 0 for index in indices):
        raise ValueError(f"seeds and indices must be >= 0, got {base_seed}, {indices}")
    key = (int(stream), len(indices), *indices)
    words = np.random.SeedSequence(base_seed, spawn_key=key).generate_state(2, np.uint32)
    return (int(words[0]) << 32 | int(words[1])) >> (64 - bits)


def latent_noise(episode_seed: int) -> np.random.Generator:
    """The generator of the eps in z = mu + sigma * eps along the episode on `episode_seed`.

    Its own stream: gymnasium builds the track from `default_rng(episode_seed)`, and noise drawn
    from that same stream would be a copy of the track's randomness.
    """
    return np.random.default_rng(np.random.SeedSequence(episode_seed, spawn_key=(0,)))
