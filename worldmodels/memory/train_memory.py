"""Stage 4: train the MDN-RNN on the VAE's latent statistics.

    python -m worldmodels.memory.train_memory --epochs 40

Reads `<home>/latent-stats/<dataset>/`, writes `<home>/memory-training/`: checkpoints,
losses.csv and TensorBoard summaries. Every epoch draws a fresh z = mu + sigma * eps for each
step of each episode. Episodes of different lengths are padded at the end and the padding is
masked out of the loss; they never mix. Rerunning the same command resumes.
"""

from __future__ import annotations

import dataclasses
import math
import sys

import keras
import tensorflow as tf

from worldmodels import layout
from worldmodels.cli import (
    add_on_corrupt_argument,
    add_strategy_argument,
    add_validation_arguments,
    make_parser,
    non_negative_int,
    positive_int,
)
from worldmodels.data.sample_latent_stats import require_current_latent_stats
from worldmodels.data.tf_records import (
    ACTION_DIM,
    LATENT_STATS,
    CorruptEpisodeError,
    corrupt_episodes_raise,
    list_episodes,
    record_dataset,
)
from worldmodels.memory.memory import MEMORIES, build_memory, mdn_loss
from worldmodels.params import DATASETS, MemoryParams
from worldmodels.seeds import SEED_SCHEME, Model, Stream, derive_seed
from worldmodels.training import (
    RunMismatchError,
    TrainingRun,
    describe_strategy,
    distributed_train_step,
    make_strategy,
    mean_losses,
    split_episodes,
)


def parse_args(argv: list[str] | None = None):
    defaults = MemoryParams()
    parser = make_parser(__doc__.split("\n\n")[0])
    parser.add_argument(
        "--dataset",
        choices=DATASETS,
        default="random",
        help="train on <home>/latent-stats/<dataset>",
    )
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
        help="start a new run from the weights of the last checkpoint; the old run is kept aside",
    )
    add_validation_arguments(parser, defaults.validation_share)
    add_strategy_argument(parser)
    add_on_corrupt_argument(parser)
    return parser.parse_args(argv)


def sequences_for_epoch(paths, batch_size: int, seed: int, on_corrupt: str) -> tf.data.Dataset:
    """Padded batches of (inputs B x T x 35, targets B x T x 32, mask B x T) for one epoch.

    inputs_t = concat(z_t, a_t), targets_t = z_{t+1}, z drawn from (mu, logvar) with a seed
    fixed by (`seed`, position in the epoch). An episode of length L gives L - 1 steps; the
    mask is 0 on the padding after them.
    """
    episodes = record_dataset(paths, LATENT_STATS, shuffle=True, seed=seed, on_corrupt=on_corrupt)

    def to_sequence(position, episode):
        noise = tf.random.stateless_normal(tf.shape(episode["mu"]), seed=[seed, position])
        z = episode["mu"] + tf.exp(episode["logvar"] / 2) * noise
        inputs = tf.concat([z[:-1], episode["action"][:-1]], axis=-1)
        return inputs, z[1:], tf.ones(tf.shape(z)[0] - 1)

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
    stats_directory = layout.latent_stats(home, args.dataset)
    require_current_latent_stats(stats_directory, args.dataset)
    all_paths = list_episodes(stats_directory)
    if not all_paths:
        sys.exit(
            f"error: no latent statistics in {stats_directory}; encode episodes first: "
            f"python -m worldmodels.data.sample_latent_stats --dataset {args.dataset}"
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
    paths, validation = split_episodes(
        layout.memory_training(home),
        all_paths,
        params.validation_share,
        derive_seed(args.seed, Stream.VALIDATION, Model.MEMORY),
        new_run=args.load_model,
    )

    keras.utils.set_random_seed(derive_seed(args.seed, Stream.MODEL_INIT, Model.MEMORY, bits=32))
    strategy = make_strategy(args.strategy)
    with strategy.scope():
        memory = build_memory(
            params.memory,
            params.attention_window,
            lstm_units=params.lstm_units,
            num_mixtures=params.num_mixtures,
        )
        memory(tf.zeros((1, 2, memory.latent_dim + ACTION_DIM)))
        steps_per_epoch = math.ceil(len(paths) / params.batch_size)
        schedule = keras.optimizers.schedules.PolynomialDecay(
            params.learning_rate, params.epochs * steps_per_epoch, params.final_learning_rate
        )
        # Element-wise clipping, as the paper's code (tf.clip_by_value on each gradient).
        optimizer = keras.optimizers.Adam(schedule, clipvalue=params.gradient_clip)
        optimizer.build(memory.trainable_variables)
    settings = {
        "dataset": args.dataset,
        "memory": params.memory,
        "attention_window": params.attention_window,
        "lstm_units": params.lstm_units,
        "num_mixtures": params.num_mixtures,
        "batch_size": params.batch_size,
        "learning_rate": params.learning_rate,
        "final_learning_rate": params.final_learning_rate,
        "gradient_clip": params.gradient_clip,
        "validation_share": params.validation_share,
        "seed": args.seed,
        "seed_scheme": SEED_SCHEME,
    }
    try:
        run = TrainingRun(
            layout.memory_training(home),
            memory,
            optimizer,
            settings,
            config={"memory": dataclasses.asdict(params), "command": vars(args)},
            load_model=args.load_model,
            validation_episodes=validation,
        )
    except (RunMismatchError, FileNotFoundError) as error:
        sys.exit(f"error: {error}")
    print(f"{run.description}; {describe_strategy(strategy)}")

    sequence_spec = [
        tf.TensorSpec([None, None, memory.latent_dim + ACTION_DIM], tf.float32),
        tf.TensorSpec([None, None, memory.latent_dim], tf.float32),
        tf.TensorSpec([None, None], tf.float32),
    ]

    def losses_of_batch(inputs, targets, mask):
        (logit_pi, mu, log_sigma), _ = memory(inputs)
        losses = {
            "loss": mdn_loss(logit_pi, mu, log_sigma, targets, mask),
            "learning_rate": schedule(optimizer.iterations),
        }
        return losses, tf.reduce_sum(mask)

    train_step = tf.function(
        distributed_train_step(strategy, losses_of_batch, memory, optimizer),
        reduce_retracing=True,
    )

    @tf.function(input_signature=sequence_spec)
    def validation_step(inputs, targets, mask):
        (logit_pi, mu, log_sigma), _ = memory(inputs)
        return {"loss": mdn_loss(logit_pi, mu, log_sigma, targets, mask)}

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
        f"episodes of {stats_directory} ({len(validation)} held out); checkpoints, losses.csv "
        f"and validation.csv in {run.directory}"
    )


if __name__ == "__main__":
    main()
