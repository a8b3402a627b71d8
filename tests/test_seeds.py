import itertools

import numpy as np
import pytest

from worldmodels.seeds import SEED_BITS, Model, Stream, derive_seed, latent_noise

FIRST = 10_000


def first_seeds_of_every_stream(base_seed: int) -> dict[str, list[int]]:
    """The first 10,000 seeds of every stream the project draws, as the commands draw them."""
    per_generation = 16  # episodes per candidate, and the mid-training evaluation's episodes
    generations = FIRST // per_generation
    return {
        "stage-1 episodes": [
            derive_seed(base_seed, Stream.EPISODE_TRACKS, i) for i in range(FIRST)
        ],
        "random agent draws": [
            derive_seed(base_seed, Stream.RANDOM_AGENT, i) for i in range(FIRST)
        ],
        "training tracks": [
            derive_seed(base_seed, Stream.TRAINING_TRACKS, g, j)
            for g in range(generations)
            for j in range(per_generation)
        ],
        "mid-training evaluation": [
            derive_seed(base_seed, Stream.TRAINING_EVALUATION_TRACKS, g, j)
            for g in range(generations)
            for j in range(per_generation)
        ],
        "final evaluation": [
            derive_seed(base_seed, Stream.EVALUATION_TRACKS, j) for j in range(FIRST)
        ],
        "optimizer": [derive_seed(base_seed, Stream.OPTIMIZER)],
        "model init": [derive_seed(base_seed, Stream.MODEL_INIT, m) for m in Model],
        "validation": [derive_seed(base_seed, Stream.VALIDATION, m) for m in Model],
        "prediction": [derive_seed(base_seed, Stream.PREDICTION, i) for i in range(FIRST)]
        + [derive_seed(base_seed, Stream.PREDICTION)],
        "data order": [
            derive_seed(base_seed, Stream.DATA_ORDER, m, epoch)
            for m in Model
            for epoch in range(FIRST // 2)
        ],
    }


@pytest.mark.parametrize("base_seed", [0, 1])
def test_streams_share_no_seed(base_seed):
    streams = first_seeds_of_every_stream(base_seed)
    for name, seeds in streams.items():
        assert len(set(seeds)) == len(seeds), f"{name} repeats a seed"
    for (name_a, a), (name_b, b) in itertools.combinations(streams.items(), 2):
        assert not set(a) & set(b), f"{name_a} and {name_b} share seeds"


def test_trailing_zero_indices_give_new_seeds():
    # Seed scheme 1 padded its keys with zeros: these three were one seed.
    seeds = {derive_seed(0, Stream.TRAINING_TRACKS, 3, *[0] * n) for n in range(3)}
    assert len(seeds) == 3


def test_base_seeds_give_new_streams_and_seed_zero_is_a_seed():
    zero = [derive_seed(0, Stream.EPISODE_TRACKS, i) for i in range(100)]
    one = [derive_seed(1, Stream.EPISODE_TRACKS, i) for i in range(100)]
    assert not set(zero) & set(one)
    assert zero == [derive_seed(0, Stream.EPISODE_TRACKS, i) for i in range(100)]


def test_width_and_range():
    seeds = [derive_seed(7, Stream.EVALUATION_TRACKS, j) for j in range(1000)]
    assert all(0 <= seed < 2**SEED_BITS for seed in seeds)
    assert max(seeds) > 2**62  # all 63 bits are used
    assert all(0 <= derive_seed(7, Stream.MODEL_INIT, j, bits=32) < 2**32 for j in range(100))
    with pytest.raises(ValueError):
        derive_seed(-1, Stream.OPTIMIZER)


def test_latent_noise_is_not_the_tracks_stream():
    seed = derive_seed(0, Stream.EVALUATION_TRACKS, 0)
    track_stream = np.random.default_rng(seed).standard_normal(32)  # what gymnasium draws from
    noise = latent_noise(seed).standard_normal(32)
    assert not np.allclose(noise, track_stream)
    np.testing.assert_array_equal(noise, latent_noise(seed).standard_normal(32))
