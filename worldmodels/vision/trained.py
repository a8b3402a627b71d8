"""The home's trained VAE: built as its run recorded, with its latest checkpoint's weights."""

from __future__ import annotations

from pathlib import Path

from worldmodels import layout
from worldmodels.records import vae_latent
from worldmodels.training import restore_latest_weights
from worldmodels.vision.vae import VAE, build_vae


def load_vae(home: Path | None) -> VAE:
    """The VAE of `home` (its latent type, its latest weights; exits saying what to run when
    it has none), or without a home the paper's, freshly initialised."""
    vae = build_vae(vae_latent(home))
    if home is not None:
        restore_latest_weights(layout.vae_training(home), vae, "train_vae")
    return vae
