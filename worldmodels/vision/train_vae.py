"""Stage 2: train the VAE on frames streamed from episode records.

    python -m worldmodels.vision.train_vae --dataset random --epochs 10

Reads `<home>/<dataset>-rollouts/` of each dataset named, writes `<home>/vae-training/`:
checkpoints, losses.csv, TensorBoard summaries and, each epoch,
images/epoch-NNN-reconstruction.png (originals above their reconstructions) and
images/epoch-NNN-samples.png (decoded draws from the prior). Rerunning the same command after
an interruption resumes from the last checkpoint.
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
from worldmodels.params import LATENTS, VAE_SCHEDULES, VAEParams


def parse_args(argv: list[str] | None = None):
    defaults = VAEParams()
    parser = make_parser(__doc__.split("\n\n")[0])
    add_datasets_argument(parser, "<home>/<dataset>-rollouts")
    parser.add_argument(
        "--latent",
        choices=LATENTS,
        default=defaults.latent,
        help="continuous: the paper's 32 Gaussians; discrete: 32 categorical variables of 32 "
        "classes, Gumbel-softmax relaxed in training, a hard one-hot sample in agents",
    )
    for name, what in (
        ("gumbel_temperature", "the discrete VAE's Gumbel-softmax temperature"),
        ("kl_weight", "the discrete VAE's weight of KL(q || uniform)"),
    ):
        flag = name.replace("_", "-")
        parser.add_argument(
            f"--{flag}-start",
            type=float,
            default=getattr(defaults, f"{name}_start"),
            help=f"{what} at epoch 0",
        )
        parser.add_argument(
            f"--{flag}-end",
            type=float,
            default=getattr(defaults, f"{name}_end"),
            help=f"{what} it anneals exponentially towards",
        )
        parser.add_argument(
            f"--{flag}-half-life",
            type=float,
            default=getattr(defaults, f"{name}_half_life"),
            help=f"epochs in which {what} halves its distance to the end value",
        )
    parser.add_argument(
        "--epochs",
        type=positive_int,
        default=defaults.epochs,
        help="total epochs of the run; raise it and rerun to train longer",
    )
    parser.add_argument(
        "--batch-size",
        "--batch_size",
        type=positive_int,
        default=defaults.batch_size,
        help="frames per step (paper: 32 / 100)",
    )
    parser.add_argument(
        "--learning-rate", type=float, default=defaults.learning_rate, help="Adam learning rate"
    )
    parser.add_argument(
        "--kl-tolerance",
        type=float,
        default=defaults.kl_tolerance,
        help="free bits: KL is floored at kl_tolerance * 32 nats per frame",
    )
    parser.add_argument(
        "--shuffle-buffer",
        type=positive_int,
        default=10_000,
        help="frames in the shuffle buffer (~12 KB each)",
    )
    parser.add_argument(
        "--checkpoint-every",
        type=positive_int,
        default=1000,
        help="steps between checkpoints (and at the end of every epoch)",
    )
    parser.add_argument(
        "--seed",
        type=non_negative_int,
        default=0,
        help="seeds the initial weights and the order of the frames",
    )
    parser.add_argument(
        "--load-model",
        action="store_true",
        help="start a new run from the weights of the last checkpoint (e.g. on --dataset "
        "controller), the old run kept aside; the same command run again resumes that run",
    )
    add_validation_arguments(parser, defaults.validation_share)
    add_strategy_argument(parser)
    add_on_corrupt_argument(parser)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    from worldmodels.vision.vae_training import train_vae  # after parsing: --help stays fast

    params = dataclasses.replace(
        VAEParams(),
        epochs=args.epochs,
        batch_size=args.batch_size,
        learning_rate=args.learning_rate,
        kl_tolerance=args.kl_tolerance,
        validation_share=args.validation_share,
        latent=args.latent,
        **{key: getattr(args, key) for key in VAE_SCHEDULES},
    )
    print(
        train_vae(
            layout.resolve_home(args.home),
            args.dataset,
            params,
            seed=args.seed,
            shuffle_buffer=args.shuffle_buffer,
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
