"""Latent statistics: each episode of a dataset encoded by the home's VAE (stage 3), and the
check that statistics are of the VAE the home has now.

`<home>/latent-stats/<dataset>/episode-NNNNNN.tfrecord`, one per episode, holds per step the
encoder's mu and logvar (T x 32) and the episode's action (T x 3), reward and done flag (T);
`encoded-with.json` beside them names the VAE checkpoint and its weights' fingerprint.
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import numpy as np
import tensorflow as tf

from worldmodels import layout
from worldmodels.data.tf_records import (
    LATENT_STATS,
    CorruptEpisodeError,
    corrupt_episodes_raise,
    episode_dataset,
    list_episodes,
    save_record,
)
from worldmodels.files import atomic_write_text
from worldmodels.images import unit_frames
from worldmodels.progress import progress
from worldmodels.records import vae_latent
from worldmodels.training import fingerprint, restore_latest_weights
from worldmodels.vision.vae import FRAME_SHAPE, VAE

PROVENANCE_FILE = "encoded-with.json"
# 2: with each step's reward and done flag (for M's reward and done heads); 1 (no "format" in
# the provenance file): without.
LATENT_STATS_FORMAT = 2


def encoded_by(directory: Path) -> str | None:
    """The weights fingerprint of the VAE that encoded the latent statistics in `directory`;
    None when they recorded none (made by hand, or by an earlier version)."""
    provenance = Path(directory) / PROVENANCE_FILE
    return (
        json.loads(provenance.read_text()).get("vae_fingerprint") if provenance.exists() else None
    )


def stale_latent_stats(directory: Path, vae_fingerprint: str | None = None) -> str | None:
    """Why the latent statistics in `directory` cannot be used, or None: of an older format,
    or encoded by another VAE than the one of weights fingerprint `vae_fingerprint` (see
    `agent.fingerprint`; statistics that recorded none are not compared).

    A directory without a provenance file (made by hand) is taken as current."""
    provenance = Path(directory) / PROVENANCE_FILE
    if not provenance.exists():
        return None
    recorded = json.loads(provenance.read_text())
    if recorded.get("format", 1) != LATENT_STATS_FORMAT:
        return (
            f"{directory} holds latent statistics of an older format, without each step's "
            "reward and done flag"
        )
    encoder = recorded.get("vae_fingerprint")
    if None not in (vae_fingerprint, encoder) and encoder != vae_fingerprint:
        return (
            f"{directory} holds latent statistics encoded by another VAE "
            f"({recorded['vae_checkpoint']}) than the latest checkpoint"
        )
    return None


def latest_vae(home: Path) -> tuple[VAE, str]:
    """The home's VAE with the weights of its latest checkpoint, and that checkpoint's path;
    exits saying what to run when there is none."""
    vae = VAE()
    vae(tf.zeros((1, *FRAME_SHAPE)))
    checkpoint = restore_latest_weights(
        layout.vae_training(home), vae, "python -m worldmodels.vision.train_vae"
    )
    return vae, checkpoint


def require_current_latent_stats(directory: Path, dataset: str, home: Path) -> None:
    """Exits with what to run when the latent statistics in `directory` are of an older format
    or were encoded by another VAE than the home's latest (a retrained V, not encoded again)."""
    has_vae = tf.train.latest_checkpoint(layout.vae_training(home) / layout.CHECKPOINTS)
    current = None
    if has_vae and vae_latent(home) == "continuous":
        current = fingerprint(latest_vae(home)[0])
    reason = stale_latent_stats(directory, current)
    if reason is not None:
        sys.exit(
            f"error: {reason}; encode them again: python -m "
            f"worldmodels.data.sample_latent_stats --dataset {dataset} --overwrite"
        )


def encode_dataset(
    home: Path,
    dataset: str,
    batch_size: int = 1000,
    overwrite: bool = False,
    on_corrupt: str = "error",
) -> str:
    """Encodes the episodes of `dataset` not yet encoded by the home's latest VAE, `batch_size`
    frames per encoder call; with `overwrite`, statistics of another VAE or an older format are
    deleted first (else an error). Returns the summary line. Exits with a message naming what
    is missing or damaged."""
    episodes_directory = layout.rollouts(home, dataset)
    output = layout.latent_stats(home, dataset)
    if vae_latent(home) == "discrete":
        sys.exit(
            f"error: the VAE in {layout.vae_training(home)} is discrete; latent statistics feed "
            "the MDN-RNN, which this project has only on continuous latents. A discrete VAE "
            "drives a V-only controller: train_controller --controller-inputs z"
        )
    vae, checkpoint = latest_vae(home)
    vae_fingerprint = fingerprint(vae)

    provenance = output / PROVENANCE_FILE
    if provenance.exists():
        recorded = json.loads(provenance.read_text())
        reason = stale_latent_stats(output, vae_fingerprint)
        if reason is None and "vae_fingerprint" not in recorded:  # written before fingerprints
            if recorded["vae_checkpoint"] != checkpoint:
                reason = f"{output} holds latent statistics of another VAE checkpoint"
        if reason is not None:
            if not overwrite:
                sys.exit(f"error: {reason}; pass --overwrite to encode the episodes again")
            shutil.rmtree(output)
    output.mkdir(parents=True, exist_ok=True)
    atomic_write_text(
        provenance,
        json.dumps(
            {
                "vae_checkpoint": checkpoint,
                "vae_fingerprint": vae_fingerprint,
                "format": LATENT_STATS_FORMAT,
            },
            indent=2,
        ),
    )

    all_paths = list_episodes(episodes_directory)
    if not all_paths:
        sys.exit(f"error: no episodes in {episodes_directory}; run stage 1 first")
    paths = [path for path in all_paths if not (output / path.name).exists()]

    @tf.function(input_signature=[tf.TensorSpec([None, *FRAME_SHAPE], tf.uint8)])
    def encode(frames):
        return vae.encode(unit_frames(frames))

    frames = 0
    if paths:
        try:
            with corrupt_episodes_raise():
                episodes = episode_dataset(paths, on_corrupt=on_corrupt)
                for episode in progress(episodes, total=len(paths), unit="episode"):
                    observation = episode["observation"]
                    encoded = [
                        encode(observation[start : start + batch_size])
                        for start in range(0, len(observation), batch_size)
                    ]
                    name = Path(episode["path"].numpy().decode()).name
                    stats = {
                        "mu": np.concatenate([mu for mu, _ in encoded]),
                        "logvar": np.concatenate([logvar for _, logvar in encoded]),
                        "action": episode["action"].numpy(),
                        "reward": episode["reward"].numpy(),
                        "done": episode["done"].numpy(),
                        "seed": int(episode["seed"]),
                        "seed_scheme": int(episode["seed_scheme"]),
                        "policy": episode["policy"].numpy().decode(),
                    }
                    save_record(output / name, stats, LATENT_STATS)
                    frames += len(stats["mu"])
        except CorruptEpisodeError as error:
            sys.exit(f"error: {error}")
    return (
        f"encoded {len(paths)} episodes ({frames} frames) of {episodes_directory} into {output} "
        f"with {checkpoint}; skipped {len(all_paths) - len(paths)} already encoded"
    )
