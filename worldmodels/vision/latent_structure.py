"""How a VAE's latent space is organised along time: frame-to-frame KL, and reconstruction error.

    python -m worldmodels.vision.latent_structure --homes ~/wm-continuous ~/wm-discrete

For each VAE (the latest checkpoint of each home), encodes the same episodes — the episodes the
first home's VAE held out for validation, or those of --episodes — and measures, along each
episode: KL(q(z|x_t) || q(z|x_{t+1})) between consecutive frames, and the same for the
episode's frames in a shuffled order (a latent space that follows time gives the ordered
sequence a far smaller KL); and the reconstruction error of each frame (mean squared pixel
error of the frame decoded from the mode of q(z|x)). Gaussians' KL in closed form, summed over
the 32 dimensions; categoricals' summed over the 32 variables. Writes --out.json (per VAE: the
means and standard deviations, and the per-step curves: mean and std over episodes) and
--out.png.
"""

from __future__ import annotations

from pathlib import Path

from worldmodels import layout
from worldmodels.cli import add_on_corrupt_argument, make_parser, non_negative_int, positive_int


def parse_args(argv: list[str] | None = None):
    parser = make_parser(__doc__.split("\n\n")[0])
    parser.add_argument(
        "--homes",
        nargs="+",
        default=None,
        help="homes whose latest VAEs to compare (default: --home alone)",
    )
    parser.add_argument(
        "--episodes",
        default=None,
        help="folder of episode records to measure on (default: the episodes the first "
        "home's VAE held out for validation)",
    )
    parser.add_argument(
        "--max-episodes", type=positive_int, default=20, help="episodes measured at most"
    )
    parser.add_argument(
        "--seed", type=non_negative_int, default=0, help="seeds the shuffled orders"
    )
    parser.add_argument(
        "--out",
        default=None,
        help="path of the .json and .png without suffix (default: <first home>/plots/"
        "latent-structure)",
    )
    add_on_corrupt_argument(parser)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    from worldmodels.vision.latent_analysis import measure_latent_structure  # fast --help

    print(
        measure_latent_structure(
            [layout.resolve_home(home) for home in (args.homes or [args.home])],
            args.episodes,
            args.max_episodes,
            args.seed,
            Path(args.out) if args.out else None,
            args.on_corrupt,
        )
    )


if __name__ == "__main__":
    main()
