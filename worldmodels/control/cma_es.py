"""pycma's CMA-ES, made reproducible and resumable.

pycma draws its samples from numpy's global random state, which pickling the optimizer does
not save, and treats seed 0 as "seed from the clock". Here the samples come from a generator
owned by the optimizer (its `randn` option), so a pickled optimizer resumes exactly, and every
seed, 0 included, is honoured.
"""

from __future__ import annotations

import cma
import numpy as np


class SeededNormal:
    """pycma's `randn(lam, N)` drawn from a numpy Generator that is pickled with the optimizer."""

    def __init__(self, seed: int):
        self.generator = np.random.default_rng(seed)

    def __call__(self, *shape: int) -> np.ndarray:
        return self.generator.standard_normal(shape)


def seeded_options(popsize: int, seed: int, diagonal: bool) -> dict:
    """pycma options of every optimizer here: `popsize` candidates a generation, samples from
    `seed` alone, quiet."""
    return {
        "popsize": popsize,
        "seed": np.nan,  # leave numpy's global state alone: sampling uses `randn`
        "randn": SeededNormal(seed),
        "CMA_diagonal": diagonal,
        "verbose": -9,
    }


def make_optimizer(
    dimension: int, sigma0: float, popsize: int, seed: int, diagonal: bool = False
) -> cma.CMAEvolutionStrategy:
    """CMA-ES from x0 = 0 with step size `sigma0`; `diagonal` uses pycma's CMA_diagonal
    (~100x faster adaptation at N = 867, where full-covariance learning rates are tiny)."""
    options = seeded_options(popsize, seed, diagonal)
    return cma.CMAEvolutionStrategy(np.zeros(dimension), sigma0, options)


def restart_with_popsize(
    optimizer: cma.CMAEvolutionStrategy, popsize: int, seed: int
) -> cma.CMAEvolutionStrategy:
    """A CMA-ES with `popsize` candidates a generation that starts where `optimizer` stands: its
    mean, step size and coordinate-wise standard deviations (all of the distribution with
    CMA_diagonal); the evolution paths, and a full covariance's correlations, start afresh.
    pycma fixes the population size at construction, and its learning rates with it."""
    options = {
        **seeded_options(popsize, seed, bool(optimizer.opts["CMA_diagonal"])),
        "CMA_stds": optimizer.stds / optimizer.sigma,
    }
    return cma.CMAEvolutionStrategy(np.array(optimizer.mean), optimizer.sigma, options)
