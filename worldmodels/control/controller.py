"""The paper's linear controller: a = tanh(W [z, h] + b), then mapped to CarRacing's ranges.

A flat parameter vector (what CMA-ES searches) is W (288 x 3, row-major) followed by b (3):
867 numbers for z of 32 and h of 256.
"""

from __future__ import annotations

import numpy as np

LATENT_DIM = 32
HIDDEN_DIM = 256
ACTION_DIM = 3
FEATURE_DIM = LATENT_DIM + HIDDEN_DIM
PARAMETER_COUNT = FEATURE_DIM * ACTION_DIM + ACTION_DIM


def split_parameters(parameters: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """[..., 867] flat parameters -> (weights [..., 288, 3], bias [..., 3])."""
    parameters = np.asarray(parameters, np.float64)
    if parameters.shape[-1] != PARAMETER_COUNT:
        raise ValueError(
            f"controller parameters have {parameters.shape[-1]} entries, expected {PARAMETER_COUNT}"
        )
    weights = parameters[..., : FEATURE_DIM * ACTION_DIM].reshape(
        *parameters.shape[:-1], FEATURE_DIM, ACTION_DIM
    )
    return weights, parameters[..., FEATURE_DIM * ACTION_DIM :]


def to_env_action(raw: np.ndarray) -> np.ndarray:
    """tanh outputs in [-1, 1]^3 -> (steer in [-1, 1], gas in [0, 1], brake in [0, 1]), float32."""
    steer = raw[..., 0]
    gas = (raw[..., 1] + 1.0) / 2.0
    brake = np.clip(raw[..., 2], 0.0, 1.0)
    return np.stack([steer, gas, brake], axis=-1).astype(np.float32)


def controller_actions(parameters: np.ndarray, z: np.ndarray, h: np.ndarray) -> np.ndarray:
    """Actions for a batch: parameters [B, 867] (one controller per row, or [867] for all),
    z [B, 32], h [B, 256] -> actions [B, 3] float32."""
    weights, bias = split_parameters(parameters)
    features = np.concatenate([z, h], axis=-1)
    if weights.ndim == 2:
        linear = features @ weights + bias
    else:
        linear = np.einsum("bf,bfa->ba", features, weights) + bias
    return to_env_action(np.tanh(linear))
