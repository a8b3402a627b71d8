"""Seeds derived from a base seed, so that every piece of randomness can be replayed."""

import numpy as np


def derive_seed(base_seed: int, *keys: int) -> int:
    """A 32-bit seed that is a fixed function of (base_seed, *keys), for any base_seed >= 0.

    Different keys give independent streams: episode i of a dataset, epoch e of a run.
    """
    return int(np.random.SeedSequence([base_seed, *keys]).generate_state(1)[0])
