"""What the training runs recorded of themselves (each stage's run.json), read in one place:
settings a run recorded before they existed are filled in here with what such runs did.
"""

from __future__ import annotations

from pathlib import Path

from worldmodels import layout
from worldmodels.params import MemoryParams


def vae_latent(home: Path | None) -> str:
    """The latent type of the home's VAE ("continuous" or "discrete"), from its run.json."""
    if home is None:
        return "continuous"
    settings = layout.recorded_run(layout.vae_training(home)).get("settings", {})
    return settings.get("latent", "continuous")


def memory_settings(home: Path | None) -> dict:
    """The kind and sizes of the home's MDN-RNN (`memory`, `attention_window`, `lstm_units`,
    `num_mixtures`, `reward_done_heads`), from its run.json: the paper's plain 256-unit LSTM
    with 5 mixtures without a home, or for a run recorded before these were settings."""
    defaults = MemoryParams()
    settings = {
        key: getattr(defaults, key)
        for key in ("memory", "attention_window", "lstm_units", "num_mixtures", "reward_done_heads")
    }
    if home is not None:
        recorded = layout.recorded_run(layout.memory_training(home)).get("settings", {})
        settings.update({key: recorded[key] for key in settings if key in recorded})
    return settings
