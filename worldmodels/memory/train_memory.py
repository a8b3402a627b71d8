"""Stage 4: train the MDN-RNN on the VAE's latent statistics.

    python -m worldmodels.memory.train_memory --epochs 40

Reads `<home>/latent-stats/<dataset>/` of each dataset named, writes `<home>/memory-training/`:
checkpoints, losses.csv and TensorBoard summaries. Every epoch draws a fresh z = mu + sigma *
eps for each step of each episode. Episodes of different lengths are padded at the end and the
padding is masked out of the loss; they never mix. Rerunning the same command resumes.
"""

from __future__ import annotations

from worldmodels import layout
from worldmodels.cli import (
    add_datasets_argument,
    add_settings,
    add_training_arguments,
    make_parser,
    settings_from_args,
)
from worldmodels.params import MemoryParams


def parse_args(argv: list[str] | None = None):
    parser = make_parser(__doc__.split("\n\n")[0])
    add_datasets_argument(parser, "<home>/latent-stats/<dataset>")
    add_settings(parser, MemoryParams)
    add_training_arguments(
        parser,
        checkpoint_every=100,
        load_model_help="start a new run from the weights of the last checkpoint, the old run "
        "kept aside; the same command run again resumes that run",
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    from worldmodels.memory.memory_training import train_memory  # after parsing: fast --help

    print(
        train_memory(
            layout.resolve_home(args.home),
            args.dataset,
            settings_from_args(MemoryParams, args),
            checkpoint_every=args.checkpoint_every,
            validate_every=args.validate_every,
            load_model=args.load_model,
            strategy=args.strategy,
            on_corrupt=args.on_corrupt,
        )
    )


if __name__ == "__main__":
    main()
