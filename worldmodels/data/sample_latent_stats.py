"""Stage 3: encode every episode of a dataset with the trained VAE.

    python -m worldmodels.data.sample_latent_stats --dataset random

Reads `<home>/<dataset>-rollouts/` and the latest checkpoint in `<home>/vae-training/`; writes
`<home>/latent-stats/<dataset>/episode-NNNNNN.tfrecord`, one per episode, holding per step the
encoder's mu and logvar (T x 32) and the episode's action (T x 3), reward and done flag (T).
Episodes keep their own length. Rerunning skips episodes already encoded with the same VAE
checkpoint.
"""

from __future__ import annotations

from worldmodels import layout
from worldmodels.cli import add_on_corrupt_argument, dataset_name, make_parser, positive_int


def parse_args(argv: list[str] | None = None):
    parser = make_parser(__doc__.split("\n\n")[0])
    parser.add_argument(
        "--dataset", type=dataset_name, default="random", help="encode <home>/<dataset>-rollouts"
    )
    parser.add_argument(
        "--batch-size", type=positive_int, default=1000, help="frames per encoder call"
    )
    parser.add_argument(
        "--overwrite",
        action="store_true",
        help="delete latent statistics made with another VAE checkpoint, or of an older "
        "format, and encode everything again",
    )
    add_on_corrupt_argument(parser)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    from worldmodels.latent_stats import encode_dataset  # after parsing: --help stays fast

    print(
        encode_dataset(
            layout.resolve_home(args.home),
            args.dataset,
            args.batch_size,
            args.overwrite,
            args.on_corrupt,
        )
    )


if __name__ == "__main__":
    main()
