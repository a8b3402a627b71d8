import pickle

import cma
import numpy as np
import pytest

from worldmodels.control.cma_es import SeededNormal, make_optimizer, restart_with_popsize
from worldmodels.control.controller import (
    PARAMETER_COUNT,
    controller_actions,
    split_parameters,
    to_env_action,
)
from worldmodels.control.controller_training import fitness_noise


def test_parameter_count_and_layout():
    assert PARAMETER_COUNT == 288 * 3 + 3 == 867
    parameters = np.arange(PARAMETER_COUNT, dtype=np.float64)
    weights, bias = split_parameters(parameters)
    assert weights.shape == (288, 3) and bias.shape == (3,)
    assert weights[0, 1] == 1 and weights[1, 0] == 3 and list(bias) == [864, 865, 866]
    with pytest.raises(ValueError, match="866 entries, expected 867"):
        split_parameters(np.zeros(866))


def test_actions_are_the_paper_formula_in_carracing_ranges():
    rng = np.random.default_rng(0)
    parameters = 3 * rng.standard_normal((5, PARAMETER_COUNT))
    z, h = rng.standard_normal((5, 32)), np.tanh(rng.standard_normal((5, 256)))
    actions = controller_actions(parameters, z, h)
    for row in range(5):
        weights, bias = parameters[row, :864].reshape(288, 3), parameters[row, 864:]
        raw = np.tanh(np.concatenate([z[row], h[row]]) @ weights + bias)
        expected = [raw[0], (raw[1] + 1) / 2, min(max(raw[2], 0), 1)]
        np.testing.assert_allclose(actions[row], expected, rtol=1e-6, atol=1e-7)
    shared = controller_actions(parameters[0], z, h)
    np.testing.assert_allclose(shared[0], actions[0])
    assert actions.dtype == np.float32


def test_action_ranges_at_the_extremes():
    extremes = to_env_action(np.array([[-1.0, -1.0, -1.0], [1.0, 1.0, 1.0], [0.0, 0.0, 0.0]]))
    np.testing.assert_array_equal(extremes, [[-1, 0, 0], [1, 1, 1], [0, 0.5, 0]])


def sphere(x):
    return float(np.sum(np.square(x)))


def test_optimizer_matches_pycma_configured_by_hand_and_solves_the_sphere():
    ours = make_optimizer(10, 0.5, popsize=8, seed=0)
    by_hand = cma.CMAEvolutionStrategy(
        np.zeros(10), 0.5, {"popsize": 8, "randn": SeededNormal(0), "seed": np.nan, "verbose": -9}
    )
    for _ in range(150):
        population, reference = ours.ask(), by_hand.ask()
        np.testing.assert_array_equal(population, reference)
        ours.tell(population, [sphere(x - 1) for x in population])
        by_hand.tell(reference, [sphere(x - 1) for x in reference])
    np.testing.assert_allclose(ours.result.xfavorite, np.ones(10), atol=1e-4)


@pytest.mark.parametrize("diagonal", [False, True])
def test_seed_zero_is_honoured_and_a_pickled_optimizer_resumes_exactly(diagonal):
    first = make_optimizer(PARAMETER_COUNT, 0.1, 6, seed=0, diagonal=diagonal)
    second = make_optimizer(PARAMETER_COUNT, 0.1, 6, seed=0, diagonal=diagonal)
    population = first.ask()
    np.testing.assert_array_equal(population, second.ask())
    first.tell(population, [sphere(x) for x in population])
    saved = pickle.dumps(first)
    np.random.seed(123)  # pycma's default sampling would depend on this global state
    expected = first.ask()
    np.random.seed(456)
    np.testing.assert_array_equal(pickle.loads(saved).ask(), expected)
    assert not np.array_equal(make_optimizer(PARAMETER_COUNT, 0.1, 6, seed=1).ask(), population)


def test_diagonal_option_reaches_pycma():
    assert (
        make_optimizer(PARAMETER_COUNT, 0.1, 4, seed=0, diagonal=True).opts["CMA_diagonal"] is True
    )
    assert make_optimizer(PARAMETER_COUNT, 0.1, 4, seed=0).opts["CMA_diagonal"] is False


@pytest.mark.parametrize(
    "code_width, actions, count", [(32, 2, 66), (1024, 2, 2050), (32, 3, 99), (1024, 3, 3075)]
)
def test_v_only_controllers_have_the_source_documents_parameter_counts(code_width, actions, count):
    from worldmodels.control.controller import parameter_count

    # 66 and 2,050: the discrete World Models source's V + C agents (continuous and discrete z).
    assert parameter_count(code_width, actions) == count
    rng = np.random.default_rng(1)
    z = rng.standard_normal((4, code_width))
    no_memory = np.zeros((4, 0))
    assert controller_actions(rng.standard_normal(count), z, no_memory, actions).shape == (4, 3)


def test_two_actions_are_steer_and_one_throttle():
    rng = np.random.default_rng(2)
    parameters = 2 * rng.standard_normal(32 * 2 + 2)
    z = rng.standard_normal((50, 32))
    actions = controller_actions(parameters, z, np.zeros((50, 0)), actions=2)
    raw = np.tanh(z @ parameters[:64].reshape(32, 2) + parameters[64:])
    np.testing.assert_allclose(actions[:, 0], raw[:, 0], rtol=1e-6)
    np.testing.assert_allclose(actions[:, 1], np.maximum(raw[:, 1], 0), rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(actions[:, 2], np.maximum(-raw[:, 1], 0), rtol=1e-6, atol=1e-7)
    assert np.all((actions[:, 1] == 0) | (actions[:, 2] == 0))  # never gas and brake at once
    assert (actions[:, 1] > 0).any() and (actions[:, 2] > 0).any()


def test_fitness_noise_matches_a_hand_computed_analysis_of_variance():
    # Candidate means 2 and 8, track means 5 and 5, every residual ±1: residual mean square
    # 4 / 1 degree of freedom, candidate mean square 2 * (3² + 3²) = 36, (36 - 4) / 2 = 16.
    assert fitness_noise(np.array([[1.0, 3.0], [9.0, 7.0]])) == pytest.approx(
        {"candidate_sd": 4.0, "episode_noise_sd": 2.0, "signal_to_noise": 4 / np.sqrt(2)}
    )
    # Candidate means 2 and 4 differ by no more than the residuals explain.
    assert fitness_noise(np.array([[1.0, 3.0], [5.0, 3.0]])) == pytest.approx(
        {"candidate_sd": 0.0, "episode_noise_sd": 2.0, "signal_to_noise": 0.0}
    )


def test_fitness_noise_recovers_the_spreads_a_generation_was_drawn_with():
    rng = np.random.default_rng(0)
    true_fitness = rng.normal(0, 30, size=(3000, 1))
    track_luck = rng.normal(0, 200, size=(1, 16))  # the same for every candidate: no ranking
    rewards = 700 + true_fitness + track_luck + rng.normal(0, 120, size=(3000, 16))
    noise = fitness_noise(rewards)
    assert noise["candidate_sd"] == pytest.approx(true_fitness.std(), rel=0.05)
    assert noise["episode_noise_sd"] == pytest.approx(120, rel=0.02)
    assert noise["signal_to_noise"] == pytest.approx(true_fitness.std() / (120 / 4), rel=0.05)


def test_fitness_noise_needs_two_candidates_two_tracks_and_some_noise():
    assert fitness_noise(np.ones((4, 1))) is None
    assert fitness_noise(np.ones((1, 4))) is None
    assert fitness_noise(np.add.outer([1.0, 2.0, 3.0], [10.0, 20.0])) is None


@pytest.mark.parametrize("diagonal", [True, False])
def test_a_popsize_restart_starts_from_the_distribution_the_search_reached(diagonal):
    optimizer = make_optimizer(6, 0.3, 8, seed=1, diagonal=diagonal)
    scales = np.array([1.0, 4.0, 16.0, 1.0, 4.0, 16.0])
    for _ in range(40):  # an ill-conditioned ellipsoid: the coordinate stds come apart
        population = optimizer.ask()
        optimizer.tell(population, [float(np.sum(scales * (x - 1) ** 2)) for x in population])
    restarted = restart_with_popsize(optimizer, 32, seed=2)
    assert restarted.popsize == 32 and len(restarted.ask()) == 32
    np.testing.assert_allclose(restarted.mean, optimizer.mean)
    assert restarted.sigma == pytest.approx(optimizer.sigma)
    np.testing.assert_allclose(restarted.stds, optimizer.stds, rtol=1e-4)
    assert optimizer.stds.max() / optimizer.stds.min() > 2
    # Its samples have that spread around that mean (pycma's own sampling, 200 x 32 draws).
    samples = np.concatenate([restarted.ask() for _ in range(200)])
    np.testing.assert_allclose(samples.std(axis=0), optimizer.stds, rtol=0.05)
    np.testing.assert_allclose(
        samples.mean(axis=0), optimizer.mean, atol=0.05 * optimizer.stds.max()
    )
