"""Stage 2's training loop: the VAE on frames streamed from episode records, resumable.

Writes `<home>/vae-training/` (see `worldmodels.vision.train_vae`, its command).
"""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from worldmodels import layout
from worldmodels.data.tf_records import (
    CorruptEpisodeError,
    corrupt_episodes_raise,
    frame_dataset,
    load_first_episode,
)
from worldmodels.files import exclusive_use
from worldmodels.images import image_grid, save_png, unit_frames
from worldmodels.params import VAEParams, run_settings
from worldmodels.records import command_record
from worldmodels.seeds import SEED_SCHEME, Model, Stream, derive_seed
from worldmodels.training import (
    NoEpisodesError,
    TrainingRun,
    distributed_train_step,
    episodes_of,
    mean_losses,
    open_run,
)
from worldmodels.vision.vae import (
    ACTIVITY_THRESHOLD,
    FRAME_SHAPE,
    annealed,
    build_vae,
    latent_activity,
)

PREVIEW_FRAMES = 8


def train_vae(
    home: Path,
    datasets: list[str],
    params: VAEParams,
    *,
    shuffle_buffer: int = 10_000,
    checkpoint_every: int = 1000,
    validate_every: int = 0,
    load_model: bool = False,
    strategy: str = "default",
    on_corrupt: str = "error",
) -> str:
    """Trains (or resumes training) the VAE of `home` on the episodes of `datasets` for
    `params.epochs` epochs in all; `load_model` starts a new run from the last checkpoint's
    weights. Returns the summary line; exits with a message naming what is missing, damaged or
    inconsistent."""
    folders = {dataset: layout.rollouts(home, dataset) for dataset in datasets}
    try:
        all_paths = episodes_of(folders)
    except NoEpisodesError as error:
        sys.exit(
            f"error: {error}; sample some first, e.g. python -m worldmodels.data.sample_policy "
            f"--policy random --episodes 100 --dataset {error.dataset}"
        )
    settings = {
        "dataset": layout.dataset_setting(datasets),
        **run_settings(params),
        "shuffle_buffer": shuffle_buffer,
        "seed_scheme": SEED_SCHEME,
    }

    def build(episodes: int):
        vae = build_vae(params.latent, params.kl_tolerance)
        optimizer = keras.optimizers.Adam(params.learning_rate)
        optimizer.build(vae.trainable_variables)
        return vae, optimizer

    with exclusive_use(layout.vae_training(home), "a VAE training run"):
        run, strategy, paths, validation = open_run(
            layout.vae_training(home),
            all_paths,
            settings,
            build,
            model=Model.VAE,
            seed=params.seed,
            validation_share=params.validation_share,
            load_model=load_model,
            strategy=strategy,
            config={
                "vae": dataclasses.asdict(params),
                "command": command_record(
                    home,
                    params,
                    dataset=datasets,
                    shuffle_buffer=shuffle_buffer,
                    checkpoint_every=checkpoint_every,
                    validate_every=validate_every,
                    load_model=load_model,
                    strategy=strategy,
                    on_corrupt=on_corrupt,
                ),
            },
        )
        vae, optimizer = run.model, run.optimizer

        def losses_of_batch(frames):
            return vae.loss_terms(frames), tf.cast(tf.shape(frames)[0], tf.float32)

        train_step = tf.function(
            distributed_train_step(strategy, losses_of_batch, vae, optimizer), reduce_retracing=True
        )

        def frames_for_epoch(epoch: int) -> tf.data.Dataset:
            return frame_dataset(
                paths,
                params.batch_size,
                shuffle_buffer=shuffle_buffer,
                seed=derive_seed(params.seed, Stream.DATA_ORDER, Model.VAE, epoch),
                on_corrupt=on_corrupt,
            )

        @tf.function(input_signature=[tf.TensorSpec([None, *FRAME_SHAPE], tf.float32)])
        def validation_step(frames):
            """The losses on a batch, and its q(z|x)'s first parameters (mu, or the logits)."""
            return vae.loss_terms(frames), vae.posterior(frames)[0]

        def validation_losses() -> dict:
            """The losses on the held-out episodes' frames (z sampled as in training) and, for the
            continuous VAE, how many latent dimensions are active on them."""
            validation_frames = frame_dataset(
                validation,
                params.batch_size,
                shuffle_buffer=1,
                seed=derive_seed(params.seed, Stream.VALIDATION, Model.VAE),
                on_corrupt=on_corrupt,
            )
            mu_batches = []

            def losses_keeping_mu(frames):
                losses, first_parameters = validation_step(frames)
                if (
                    params.latent == "continuous"
                ):  # a discrete VAE's logits are not kept: 1024 a frame
                    mu_batches.append(first_parameters.numpy())
                return losses

            # One pass over the held-out frames gives both the losses and the latent activity.
            losses = mean_losses(losses_keeping_mu, validation_frames)
            if losses and params.latent == "continuous":
                activity = latent_activity(mu_batches)
                losses["active_dimensions"] = int(np.sum(activity > ACTIVITY_THRESHOLD))
            return losses

        try:
            # Held-out frames first: reconstructions of frames the VAE never trained on.
            preview = preview_frames(load_first_episode(validation + paths, on_corrupt))
        except (CorruptEpisodeError, FileNotFoundError) as error:
            sys.exit(f"error: {error}")
        prior_draws = vae.prior_codes(16, params.seed)

        def anneal(epoch: int) -> None:
            """The discrete VAE's temperature and KL weight for `epoch` (0-based)."""
            if params.latent == "discrete":
                vae.temperature.assign(
                    annealed(
                        params.gumbel_temperature_start,
                        params.gumbel_temperature_end,
                        params.gumbel_temperature_half_life,
                        epoch,
                    )
                )
                vae.kl_weight.assign(
                    annealed(
                        params.kl_weight_start,
                        params.kl_weight_end,
                        params.kl_weight_half_life,
                        epoch,
                    )
                )

        try:
            with corrupt_episodes_raise():
                run.fit(
                    params.epochs,
                    frames_for_epoch,
                    train_step,
                    checkpoint_every,
                    after_epoch=lambda epoch: save_epoch_images(
                        run, vae, preview, prior_draws, epoch
                    ),
                    validate=validation_losses if validation else None,
                    validate_every=validate_every,
                    before_epoch=anneal,
                    strategy=strategy,
                )
        except CorruptEpisodeError as error:
            sys.exit(f"error: {error}")
        return (
            f"trained the VAE for {params.epochs} epochs ({run.step} steps) on {len(paths)} "
            f"episodes of {', '.join(map(str, folders.values()))} ({len(validation)} held out); "
            f"checkpoints, losses.csv, validation.csv and images in {run.directory}"
        )


def preview_frames(episode: dict) -> tf.Tensor:
    """PREVIEW_FRAMES frames spread over one episode, float32 in [0, 1]."""
    observation = episode["observation"]
    picks = np.linspace(0, len(observation) - 1, PREVIEW_FRAMES).astype(int)
    return unit_frames(observation[picks])


def save_epoch_images(run: TrainingRun, vae, preview, prior_draws, epoch: int) -> None:
    """Reconstructions of the preview frames (from the mode of q(z|x)) and decoded prior
    draws, as PNG and TensorBoard."""
    reconstruction = image_grid(
        np.concatenate([preview, vae.reconstruct(preview).numpy()]), PREVIEW_FRAMES
    )
    samples = image_grid(vae.decode(prior_draws).numpy(), 8)
    images = run.directory / layout.IMAGES
    save_png(images / f"epoch-{epoch:03d}-reconstruction.png", reconstruction)
    save_png(images / f"epoch-{epoch:03d}-samples.png", samples)
    with run.log.summaries.as_default(step=run.step):
        tf.summary.image("reconstruction", reconstruction[None])
        tf.summary.image("prior_samples", samples[None])
