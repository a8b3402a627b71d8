"""The paper's linear controller: a = tanh(W [z, h] + b), then mapped to CarRacing's ranges.

A flat parameter vector (what CMA-ES searches) is W (features x 3, row-major) followed by b
(3): 867 numbers for the paper's z of 32 and h of 256.
"""

from __future__ import annotations

import numpy as np

LATENT_DIM = 32
HIDDEN_DIM = 256  # the paper's LSTM width; an MDN-RNN trained with --lstm-units has its own
ACTION_DIM = 3


def parameter_count(feature_dim: int) -> int:
    """Entries of a controller reading `feature_dim` features: W and b."""
    return feature_dim * ACTION_DIM + ACTION_DIM


PARAMETER_COUNT = parameter_count(LATENT_DIM + HIDDEN_DIM)  # 867, the paper's controller


def split_parameters(
    parameters: np.ndarray, feature_dim: int = LATENT_DIM + HIDDEN_DIM
) -> tuple[np.ndarray, np.ndarray]:
    """[..., P] flat parameters -> (weights [..., feature_dim, 3], bias [..., 3])."""
    parameters = np.asarray(parameters, np.float64)
    expected = parameter_count(feature_dim)
    if parameters.shape[-1] != expected:
        raise ValueError(
            f"controller parameters have {parameters.shape[-1]} entries, expected {expected} "
            f"for {feature_dim} features"
        )
    weights = parameters[..., : feature_dim * ACTION_DIM].reshape(
        *parameters.shape[:-1], feature_dim, ACTION_DIM
    )
    return weights, parameters[..., feature_dim * ACTION_DIM :]


def to_env_action(raw: np.ndarray) -> np.ndarray:
    """tanh outputs in [-1, 1]^3 -> (steer in [-1, 1], gas in [0, 1], brake in [0, 1]), float32."""
    steer = raw[..., 0]
    gas = (raw[..., 1] + 1.0) / 2.0
    brake = np.clip(raw[..., 2], 0.0, 1.0)
    return np.stack([steer, gas, brake], axis=-1).astype(np.float32)


def controller_actions(parameters: np.ndarray, z: np.ndarray, h: np.ndarray) -> np.ndarray:
    """Actions for a batch: parameters [B, P] (one controller per row, or [P] for all),
    z [B, 32], h [B, H] -> actions [B, 3] float32, P = parameter_count(32 + H)."""
    features = np.concatenate([z, h], axis=-1)
    weights, bias = split_parameters(parameters, features.shape[-1])
    if weights.ndim == 2:
        linear = features @ weights + bias
    else:
        linear = np.einsum("bf,bfa->ba", features, weights) + bias
    return to_env_action(np.tanh(linear))
