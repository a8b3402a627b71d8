"""The paper's linear controller: a = tanh(W [z, h] + b), then mapped to CarRacing's ranges.

A flat parameter vector (what CMA-ES searches) is W (features x outputs, row-major) followed by
b (outputs): 867 numbers for the paper's z of 32, h of 256 and 3 outputs. `ControllerSpec`
says what a controller reads (z and M's features, or z alone: the V-only agent) and how many
outputs it has (3, or 2: steer and one throttle, positive for gas and negative for brake).
The environment always gets (steer, gas, brake).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from worldmodels.params import ACTION_MODES, CONTROLLER_INPUTS

LATENT_DIM = 32
HIDDEN_DIM = 256  # the paper's LSTM width; an MDN-RNN trained with --lstm-units has its own
ACTION_DIM = 3  # what the environment takes: steer, gas, brake


@dataclass(frozen=True)
class ControllerSpec:
    """What a controller reads and outputs: settings of its training run (control/run.json)."""

    inputs: str = "zh"  # "zh": z and the memory's features (the paper's); "z": z alone
    actions: int = 3  # 3: (steer, gas, brake); 2: (steer, throttle)

    def __post_init__(self):
        if self.inputs not in CONTROLLER_INPUTS or self.actions not in ACTION_MODES:
            raise ValueError(f"not a controller: inputs {self.inputs!r}, {self.actions} actions")

    @property
    def uses_memory(self) -> bool:
        return self.inputs == "zh"


def parameter_count(feature_dim: int, actions: int = ACTION_DIM) -> int:
    """Entries of a controller reading `feature_dim` features with `actions` outputs: W, b."""
    return feature_dim * actions + actions


PARAMETER_COUNT = parameter_count(LATENT_DIM + HIDDEN_DIM)  # 867, the paper's controller


def split_parameters(
    parameters: np.ndarray, feature_dim: int = LATENT_DIM + HIDDEN_DIM, actions: int = ACTION_DIM
) -> tuple[np.ndarray, np.ndarray]:
    """[..., P] flat parameters -> (weights [..., feature_dim, actions], bias [..., actions])."""
    parameters = np.asarray(parameters, np.float64)
    expected = parameter_count(feature_dim, actions)
    if parameters.shape[-1] != expected:
        raise ValueError(
            f"controller parameters have {parameters.shape[-1]} entries, expected {expected} "
            f"for {feature_dim} features and {actions} outputs"
        )
    weights = parameters[..., : feature_dim * actions].reshape(
        *parameters.shape[:-1], feature_dim, actions
    )
    return weights, parameters[..., feature_dim * actions :]


def to_env_action(raw: np.ndarray) -> np.ndarray:
    """tanh outputs in [-1, 1]^3 or ^2 -> (steer in [-1, 1], gas in [0, 1], brake in [0, 1]),
    float32. Three outputs: the paper's gas = (a1 + 1) / 2, brake = clip(a2, 0, 1); two: one
    throttle a1, gas = max(a1, 0) and brake = max(-a1, 0)."""
    steer = raw[..., 0]
    if raw.shape[-1] == 2:
        gas, brake = np.maximum(raw[..., 1], 0.0), np.maximum(-raw[..., 1], 0.0)
    else:
        gas = (raw[..., 1] + 1.0) / 2.0
        brake = np.clip(raw[..., 2], 0.0, 1.0)
    return np.stack([steer, gas, brake], axis=-1).astype(np.float32)


def controller_actions(
    parameters: np.ndarray, z: np.ndarray, h: np.ndarray, actions: int = ACTION_DIM
) -> np.ndarray:
    """Environment actions [B, 3] float32 for a batch: parameters [B, P] (one controller per
    row, or [P] for all), z [B, Z], the memory's features h [B, H] (H = 0 for a V-only
    controller); P = parameter_count(Z + H, actions)."""
    features = np.concatenate([z, h], axis=-1)
    weights, bias = split_parameters(parameters, features.shape[-1], actions)
    if weights.ndim == 2:
        linear = features @ weights + bias
    else:
        linear = np.einsum("bf,bfa->ba", features, weights) + bias
    return to_env_action(np.tanh(linear))
