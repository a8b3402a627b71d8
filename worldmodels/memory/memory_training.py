"""Stage 4's training loop: the MDN-RNN on the VAE's latent statistics, resumable.

Writes `<home>/memory-training/` (see `worldmodels.memory.train_memory`, its command). Every
epoch draws a fresh z = mu + sigma * eps for each step of each episode. Episodes of different
lengths are padded at the end and the padding is masked out of the loss; they never mix.
"""

from __future__ import annotations

import dataclasses
import math
import sys
from pathlib import Path

import keras
import tensorflow as tf

from worldmodels import layout
from worldmodels.data.tf_records import (
    ACTION_DIM,
    LATENT_STATS,
    CorruptEpisodeError,
    corrupt_episodes_raise,
    record_dataset,
)
from worldmodels.files import exclusive_use
from worldmodels.latent_stats import encoded_by, require_current_latent_stats
from worldmodels.memory.memory import build_memory, mdn_loss, reward_done_losses
from worldmodels.params import MemoryParams, run_settings
from worldmodels.records import command_record
from worldmodels.seeds import SEED_SCHEME, Model, Stream, derive_seed
from worldmodels.training import (
    NoEpisodesError,
    distributed_train_step,
    episodes_of,
    mean_losses,
    open_run,
)


def sequences_for_epoch(paths, batch_size: int, seed: int, on_corrupt: str) -> tf.data.Dataset:
    """Padded batches of (inputs B x T x 35, targets B x T x 32, mask B x T, reward B x T,
    done B x T, step_mask B x T) for one epoch.

    An episode of length L gives L steps: inputs_t = concat(z_t, a_t) and the reward and done
    flag of that step, for t < L (`step_mask` 1); targets_t = z_{t+1}, which exists for
    t < L - 1 only (`mask` 1; the last step has no next z, but its reward and done flag, e.g.
    the -100 of leaving the playfield, are what the heads must learn). z is drawn from
    (mu, logvar) with a seed fixed by (`seed`, position in the epoch). Both masks are 0 on the
    padding.
    """
    episodes = record_dataset(paths, LATENT_STATS, shuffle=True, seed=seed, on_corrupt=on_corrupt)

    def to_sequence(position, episode):
        noise = tf.random.stateless_normal(tf.shape(episode["mu"]), seed=[seed, position])
        z = episode["mu"] + tf.exp(episode["logvar"] / 2) * noise
        inputs = tf.concat([z, episode["action"]], axis=-1)
        length = tf.shape(z)[0]
        targets = tf.concat([z[1:], tf.zeros_like(z[:1])], axis=0)
        mask = tf.cast(tf.range(length) < length - 1, tf.float32)
        done = tf.cast(episode["done"], tf.float32)
        return inputs, targets, mask, episode["reward"], done, tf.ones(length)

    return (
        episodes.filter(lambda episode: tf.shape(episode["mu"])[0] >= 2)
        .enumerate()
        .map(to_sequence, num_parallel_calls=tf.data.AUTOTUNE)
        .padded_batch(batch_size)
        .prefetch(tf.data.AUTOTUNE)
    )


def train_memory(
    home: Path,
    datasets: list[str],
    params: MemoryParams,
    *,
    checkpoint_every: int = 100,
    validate_every: int = 0,
    load_model: bool = False,
    strategy: str = "default",
    on_corrupt: str = "error",
) -> str:
    """Trains (or resumes training) the MDN-RNN of `home` on the latent statistics of
    `datasets` for `params.epochs` epochs in all; `load_model` starts a new run from the last
    checkpoint's weights. Returns the summary line; exits with a message naming what is
    missing, stale or inconsistent."""
    if params.train_heads_only and not (params.reward_done_heads and load_model):
        sys.exit(
            "error: --train-heads-only trains new heads on a trained M: add --reward-done-heads "
            "and --load-model"
        )
    folders = {dataset: layout.latent_stats(home, dataset) for dataset in datasets}
    for dataset, folder in folders.items():
        require_current_latent_stats(folder, dataset, home)
    try:
        all_paths = episodes_of(folders)
    except NoEpisodesError as error:
        sys.exit(
            f"error: {error}; encode episodes first: "
            f"python -m worldmodels.data.sample_latent_stats --dataset {error.dataset}"
        )
    encoders = {encoded_by(folder) for folder in folders.values()} - {None}
    if len(encoders) > 1:
        sys.exit(
            f"error: the latent statistics of --dataset {' '.join(datasets)} were encoded "
            "by different VAEs; encode them again with the same one "
            "(python -m worldmodels.data.sample_latent_stats --dataset NAME --overwrite)"
        )
    settings = {
        "dataset": layout.dataset_setting(datasets),
        **run_settings(params),
        "seed_scheme": SEED_SCHEME,
        # The VAE whose latents M learns: resumed on statistics that a retrained VAE encoded
        # again, a run would mix two.
        "latent_stats_vae": next(iter(encoders), None),
    }
    # Runs recorded before the fingerprint are taken to have trained on the statistics there now.
    added_later = {"latent_stats_vae": settings["latent_stats_vae"]}

    def build(episodes: int):
        memory = build_memory(
            params.memory,
            params.attention_window,
            lstm_units=params.lstm_units,
            num_mixtures=params.num_mixtures,
            reward_done_heads=params.reward_done_heads,
            reward_done_ensemble=params.reward_done_ensemble,
        )
        memory(tf.zeros((1, 2, memory.latent_dim + ACTION_DIM)))
        if params.train_heads_only:
            memory.freeze_all_but_heads()
        steps = params.epochs * math.ceil(episodes / params.batch_size)
        schedule = keras.optimizers.schedules.PolynomialDecay(
            params.learning_rate, steps, params.final_learning_rate
        )
        # Element-wise clipping, as the paper's code (tf.clip_by_value on each gradient).
        optimizer = keras.optimizers.Adam(schedule, clipvalue=params.gradient_clip)
        optimizer.build(memory.trainable_variables)
        return memory, optimizer

    with exclusive_use(layout.memory_training(home), "an MDN-RNN training run"):
        run, strategy, paths, validation = open_run(
            layout.memory_training(home),
            all_paths,
            settings,
            build,
            model=Model.MEMORY,
            seed=params.seed,
            validation_share=params.validation_share,
            load_model=load_model,
            strategy=strategy,
            config={
                "memory": dataclasses.asdict(params),
                "command": command_record(
                    home,
                    params,
                    dataset=datasets,
                    checkpoint_every=checkpoint_every,
                    validate_every=validate_every,
                    load_model=load_model,
                    strategy=strategy,
                    on_corrupt=on_corrupt,
                ),
            },
            settings_added_later=added_later,
        )
        memory, optimizer = run.model, run.optimizer

        def sequence_losses(inputs, targets, mask, reward, done, step_mask) -> dict:
            """`loss`: the mixture NLL per step, plus with the heads their two losses."""
            features, _ = memory.sequence_features(inputs)
            nll = mdn_loss(*memory.mixture(features), targets, mask)
            if not memory.reward_done_heads:
                return {"loss": nll}
            heads = reward_done_losses(
                *memory.predict_reward_done(features),
                reward,
                done,
                step_mask,
                overprediction_weight=params.reward_overprediction_weight,
            )
            return {"loss": nll + heads["reward_loss"] + heads["done_loss"], "nll": nll, **heads}

        def losses_of_batch(*batch):
            losses = sequence_losses(*batch)
            losses["learning_rate"] = optimizer.learning_rate  # the schedule's, this step
            return losses, tf.reduce_sum(batch[2])

        train_step = tf.function(
            distributed_train_step(strategy, losses_of_batch, memory, optimizer),
            reduce_retracing=True,
        )
        validation_step = tf.function(sequence_losses, reduce_retracing=True)

        def validation_losses() -> dict:
            """The mixture NLL of the held-out episodes, per step (z drawn with a fixed seed)."""
            batches = sequences_for_epoch(
                validation,
                params.batch_size,
                derive_seed(params.seed, Stream.VALIDATION, Model.MEMORY),
                on_corrupt,
            )
            return mean_losses(
                validation_step, batches, weight=lambda *batch: tf.reduce_sum(batch[2])
            )

        def batches_for_epoch(epoch: int) -> tf.data.Dataset:
            return sequences_for_epoch(
                paths,
                params.batch_size,
                derive_seed(params.seed, Stream.DATA_ORDER, Model.MEMORY, epoch),
                on_corrupt,
            )

        try:
            with corrupt_episodes_raise():
                run.fit(
                    params.epochs,
                    batches_for_epoch,
                    train_step,
                    checkpoint_every,
                    validate=validation_losses if validation else None,
                    validate_every=validate_every,
                    strategy=strategy,
                )
        except CorruptEpisodeError as error:
            sys.exit(f"error: {error}")
        return (
            f"trained the MDN-RNN for {params.epochs} epochs ({run.step} steps) on {len(paths)} "
            f"episodes of {', '.join(map(str, folders.values()))} ({len(validation)} held out); "
            f"checkpoints, losses.csv and validation.csv in {run.directory}"
        )
