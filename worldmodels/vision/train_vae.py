"""Stage 2: train the VAE on frames streamed from episode records.

    python -m worldmodels.vision.train_vae --dataset random --epochs 10

Reads `<home>/<dataset>-rollouts/` of each dataset named, writes `<home>/vae-training/`:
checkpoints, losses.csv, TensorBoard summaries and, each epoch,
images/epoch-NNN-reconstruction.png (originals above their reconstructions) and
images/epoch-NNN-samples.png (decoded draws from the prior). Rerunning the same command after
an interruption resumes from the last checkpoint.
"""

from __future__ import annotations

from worldmodels import layout
from worldmodels.cli import (
    add_datasets_argument,
    add_settings,
    add_training_arguments,
    make_parser,
    positive_int,
    settings_from_args,
)
from worldmodels.params import VAEParams


def parse_args(argv: list[str] | None = None):
    parser = make_parser(__doc__.split("\n\n")[0])
    add_datasets_argument(parser, "<home>/<dataset>-rollouts")
    add_settings(parser, VAEParams)
    parser.add_argument(
        "--shuffle-buffer",
        type=positive_int,
        default=10_000,
        help="frames in the shuffle buffer (~12 KB each)",
    )
    add_training_arguments(
        parser,
        checkpoint_every=1000,
        load_model_help="start a new run from the weights of the last checkpoint (e.g. on "
        "--dataset controller), the old run kept aside; the same command run again resumes "
        "that run",
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    from worldmodels.vision.vae_training import train_vae  # after parsing: --help stays fast

    print(
        train_vae(
            layout.resolve_home(args.home),
            args.dataset,
            settings_from_args(VAEParams, args),
            shuffle_buffer=args.shuffle_buffer,
            checkpoint_every=args.checkpoint_every,
            validate_every=args.validate_every,
            load_model=args.load_model,
            strategy=args.strategy,
            on_corrupt=args.on_corrupt,
        )
    )


if __name__ == "__main__":
    main()
