"""Stage 4: train the MDN-RNN on the VAE's latent statistics.

    python -m worldmodels.memory.train_memory --epochs 40

Reads `<home>/latent-stats/<dataset>/` of each dataset named, writes `<home>/memory-training/`:
checkpoints, losses.csv and TensorBoard summaries. Every epoch draws a fresh z = mu + sigma *
eps for each step of each episode. Episodes of different lengths are padded at the end and the
padding is masked out of the loss; they never mix. Rerunning the same command resumes.
"""

from __future__ import annotations

import dataclasses

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
from worldmodels.params import MEMORIES, MemoryParams


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


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    from worldmodels.memory.memory_training import train_memory  # after parsing: fast --help

    params = dataclasses.replace(
        MemoryParams(),
        reward_done_heads=args.reward_done_heads,
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
    print(
        train_memory(
            layout.resolve_home(args.home),
            args.dataset,
            params,
            seed=args.seed,
            checkpoint_every=args.checkpoint_every,
            validate_every=args.validate_every,
            load_model=args.load_model,
            strategy=args.strategy,
            on_corrupt=args.on_corrupt,
            flags=vars(args),
        )
    )


if __name__ == "__main__":
    main()
