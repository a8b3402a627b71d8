"""Stage 4: train the MDN-RNN on the VAE's latent statistics.

    python -m worldmodels.memory.train_memory --epochs 40

Reads `<home>/latent-stats/<dataset>/` of each dataset named, writes `<home>/memory-training/`:
checkpoints, losses.csv and TensorBoard summaries. Every epoch draws a fresh z = mu + sigma *
eps for each step of each episode. Episodes of different lengths are padded at the end and the
padding is masked out of the loss; they never mix. Rerunning the same command resumes.
"""

from __future__ import annotations

import dataclasses
import math
import sys

import keras
import tensorflow as tf

from worldmodels import layout
from worldmodels.cli import (
    add_datasets_argument,
    add_on_corrupt_argument,
    add_strategy_argument,
    add_validation_arguments,
    make_parser,
    non_negative_int,
    positive_int,
)
from worldmodels.data.tf_records import (
    ACTION_DIM,
    LATENT_STATS,
    CorruptEpisodeError,
    corrupt_episodes_raise,
    record_dataset,
)
from worldmodels.latent_stats import encoded_by, require_current_latent_stats
from worldmodels.memory.memory import MEMORIES, build_memory, mdn_loss, reward_done_losses
from worldmodels.params import MemoryParams
from worldmodels.seeds import SEED_SCHEME, Model, Stream, derive_seed
from worldmodels.training import (
    NoEpisodesError,
    RunMismatchError,
    TrainingRun,
    describe_strategy,
    distributed_train_step,
    episodes_of,
    make_strategy,
    mean_losses,
    split_episodes,
    starts_new_run,
)

# Runs recorded before the reward and done heads existed trained without them.
SETTINGS_ADDED_LATER = {"reward_done_heads": False}


def parse_args(argv: list[str] | None = None):
    defaults = MemoryParams()
    parser = make_parser(__doc__.split("\n\n")[0])
    add_datasets_argument(parser, "<home>/latent-stats/<dataset>")
    parser.add_argument(
        "--memory",
        choices=MEMORIES,
        default=defaults.memory,
        help="lstm: the paper's MDN-RNN; attention: the LSTM followed by causal soft attention "
        "over its last --attention-window outputs, whose context the head and the controller "
        "read beside h",
    )
    parser.add_argument(
        "--attention-window",
        type=positive_int,
        default=defaults.attention_window,
        help="with --memory attention: the outputs each step attends to, itself included",
    )
    parser.add_argument(
        "--lstm-units", type=positive_int, default=defaults.lstm_units, help="LSTM width (h)"
    )
    parser.add_argument(
        "--reward-done-heads",
        action="store_true",
        help="also predict each step's reward (squared error) and done flag (cross-entropy) "
        "from the features, for training the controller in the dream; the loss is then the "
        "mixture NLL plus both",
    )
    parser.add_argument(
        "--num-mixtures",
        type=positive_int,
        default=defaults.num_mixtures,
        help="Gaussians in the mixture of each latent dimension",
    )
    parser.add_argument(
        "--epochs",
        type=positive_int,
        default=defaults.epochs,
        help="total epochs of the run (the write-up: 20-80)",
    )
    parser.add_argument(
        "--batch-size",
        "--batch_size",
        type=positive_int,
        default=defaults.batch_size,
        help="episodes per step",
    )
    parser.add_argument(
        "--learning-rate",
        type=float,
        default=defaults.learning_rate,
        help="initial Adam learning rate",
    )
    parser.add_argument(
        "--final-learning-rate",
        type=float,
        default=defaults.final_learning_rate,
        help="learning rate at the last step (polynomial decay over the run)",
    )
    parser.add_argument(
        "--gradient-clip",
        type=float,
        default=defaults.gradient_clip,
        help="each gradient element is clipped to [-clip, clip]",
    )
    parser.add_argument(
        "--checkpoint-every",
        type=positive_int,
        default=100,
        help="steps between checkpoints (and at the end of every epoch)",
    )
    parser.add_argument(
        "--seed",
        type=non_negative_int,
        default=0,
        help="seeds the initial weights, the episode order and the z draws",
    )
    parser.add_argument(
        "--load-model",
        action="store_true",
        help="start a new run from the weights of the last checkpoint, the old run kept aside; "
        "the same command run again resumes that run",
    )
    add_validation_arguments(parser, defaults.validation_share)
    add_strategy_argument(parser)
    add_on_corrupt_argument(parser)
    return parser.parse_args(argv)


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


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    home = layout.resolve_home(args.home)
    folders = {dataset: layout.latent_stats(home, dataset) for dataset in args.dataset}
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
            f"error: the latent statistics of --dataset {' '.join(args.dataset)} were encoded "
            "by different VAEs; encode them again with the same one "
            "(python -m worldmodels.data.sample_latent_stats --dataset NAME --overwrite)"
        )
    params = dataclasses.replace(
        MemoryParams(),
        memory=args.memory,
        attention_window=args.attention_window,
        lstm_units=args.lstm_units,
        num_mixtures=args.num_mixtures,
        epochs=args.epochs,
        batch_size=args.batch_size,
        learning_rate=args.learning_rate,
        final_learning_rate=args.final_learning_rate,
        gradient_clip=args.gradient_clip,
        validation_share=args.validation_share,
    )
    settings = {
        "dataset": layout.dataset_setting(args.dataset),
        "memory": params.memory,
        "attention_window": params.attention_window,
        "lstm_units": params.lstm_units,
        "num_mixtures": params.num_mixtures,
        "reward_done_heads": args.reward_done_heads,
        "batch_size": params.batch_size,
        "learning_rate": params.learning_rate,
        "final_learning_rate": params.final_learning_rate,
        "gradient_clip": params.gradient_clip,
        "validation_share": params.validation_share,
        "seed": args.seed,
        "seed_scheme": SEED_SCHEME,
        # The VAE whose latents M learns: resumed on statistics that a retrained VAE encoded
        # again, a run would mix two.
        "latent_stats_vae": next(iter(encoders), None),
    }
    # Runs recorded before the fingerprint are taken to have trained on the statistics there now.
    added_later = {**SETTINGS_ADDED_LATER, "latent_stats_vae": settings["latent_stats_vae"]}
    directory = layout.memory_training(home)
    new_run = starts_new_run(directory, args.load_model, settings, added_later)
    paths, validation = split_episodes(
        directory,
        all_paths,
        params.validation_share,
        derive_seed(args.seed, Stream.VALIDATION, Model.MEMORY),
        new_run=new_run,
    )

    keras.utils.set_random_seed(derive_seed(args.seed, Stream.MODEL_INIT, Model.MEMORY, bits=32))
    strategy = make_strategy(args.strategy)
    with strategy.scope():
        memory = build_memory(
            params.memory,
            params.attention_window,
            lstm_units=params.lstm_units,
            num_mixtures=params.num_mixtures,
            reward_done_heads=args.reward_done_heads,
        )
        memory(tf.zeros((1, 2, memory.latent_dim + ACTION_DIM)))
        steps_per_epoch = math.ceil(len(paths) / params.batch_size)
        schedule = keras.optimizers.schedules.PolynomialDecay(
            params.learning_rate, params.epochs * steps_per_epoch, params.final_learning_rate
        )
        # Element-wise clipping, as the paper's code (tf.clip_by_value on each gradient).
        optimizer = keras.optimizers.Adam(schedule, clipvalue=params.gradient_clip)
        optimizer.build(memory.trainable_variables)
    try:
        run = TrainingRun(
            directory,
            memory,
            optimizer,
            settings,
            config={"memory": dataclasses.asdict(params), "command": vars(args)},
            load_model=new_run,
            validation_episodes=validation,
            settings_added_later=added_later,
        )
    except (RunMismatchError, FileNotFoundError) as error:
        sys.exit(f"error: {error}")
    print(f"{run.description}; {describe_strategy(strategy)}")

    def sequence_losses(inputs, targets, mask, reward, done, step_mask) -> dict:
        """`loss`: the mixture NLL per step, plus with the heads their two losses."""
        features, _ = memory.sequence_features(inputs)
        nll = mdn_loss(*memory.mixture(features), targets, mask)
        if not memory.reward_done_heads:
            return {"loss": nll}
        heads = reward_done_losses(*memory.predict_reward_done(features), reward, done, step_mask)
        return {"loss": nll + heads["reward_loss"] + heads["done_loss"], "nll": nll, **heads}

    def losses_of_batch(*batch):
        losses = sequence_losses(*batch)
        losses["learning_rate"] = schedule(optimizer.iterations)
        return losses, tf.reduce_sum(batch[2])

    train_step = tf.function(
        distributed_train_step(strategy, losses_of_batch, memory, optimizer),
        reduce_retracing=True,
    )
    validation_step = tf.function(sequence_losses, reduce_retracing=True)

    def validation_losses() -> dict:
        """The mixture NLL of the held-out episodes, per step (z drawn with a fixed seed)."""
        seed = derive_seed(args.seed, Stream.VALIDATION, Model.MEMORY)
        batches = sequences_for_epoch(validation, params.batch_size, seed, args.on_corrupt)
        return mean_losses(validation_step, batches, weight=lambda *batch: tf.reduce_sum(batch[2]))

    def batches_for_epoch(epoch: int) -> tf.data.Dataset:
        seed = derive_seed(args.seed, Stream.DATA_ORDER, Model.MEMORY, epoch)
        return sequences_for_epoch(paths, params.batch_size, seed, args.on_corrupt)

    try:
        with corrupt_episodes_raise():
            run.fit(
                params.epochs,
                batches_for_epoch,
                train_step,
                args.checkpoint_every,
                validate=validation_losses if validation else None,
                validate_every=args.validate_every,
                strategy=strategy,
            )
    except CorruptEpisodeError as error:
        sys.exit(f"error: {error}")
    print(
        f"trained the MDN-RNN for {params.epochs} epochs ({run.step} steps) on {len(paths)} "
        f"episodes of {', '.join(map(str, folders.values()))} ({len(validation)} held out); "
        f"checkpoints, losses.csv and validation.csv in {run.directory}"
    )


if __name__ == "__main__":
    main()
