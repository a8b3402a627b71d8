"""A GIF of one episode of the trained agent: what it sees, what V reconstructs, what M expects.

    python -m worldmodels.control.render --generation best --seed 42 --out agent.gif

Each frame shows side by side the observation x_t, the VAE's reconstruction of it (decoded
from the mode of q(z|x): mu, or each categorical's most likely class), and the MDN-RNN's
prediction of the next frame (a z_{t+1} drawn from its mixture at --temperature given z_t, a_t
and h_t, decoded; not for a V-only agent, which has no M), with the step and the cumulative
reward.
"""

from __future__ import annotations

from worldmodels import layout
from worldmodels.cli import make_parser, non_negative_int, positive_int
from worldmodels.params import EnvParams


def parse_args(argv: list[str] | None = None):
    parser = make_parser(__doc__.split("\n\n")[0])
    parser.add_argument("--generation", default="best", help="N, max or best")
    parser.add_argument(
        "--candidate",
        choices=("mean", "best"),
        default="mean",
        help="the generation's distribution mean, or its fittest candidate",
    )
    parser.add_argument("--seed", type=non_negative_int, default=42, help="the track")
    parser.add_argument("--out", default="agent.gif", help="GIF to write")
    parser.add_argument("--episode-length", type=positive_int, default=1000, help="steps at most")
    parser.add_argument(
        "--temperature", type=float, default=1.0, help="temperature of the MDN-RNN's prediction"
    )
    parser.add_argument(
        "--scale", type=positive_int, default=2, help="each 64x64 panel is drawn scale times larger"
    )
    parser.add_argument("--fps", type=positive_int, default=25, help="GIF frames per second")
    parser.add_argument(
        "--env",
        choices=("fast", "stock"),
        default="fast",
        help="fast: FastCarRacing (identical observations); stock: CarRacing-v3",
    )
    parser.add_argument(
        "--dream",
        action="store_true",
        help="an episode dreamed by M instead (needs its reward and done heads): each z "
        "decoded by the VAE, with the predicted reward; --seed picks the first frame and the "
        "dream's randomness, --temperature is M's",
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    from worldmodels.control.rendering import render_episode  # after parsing: fast --help

    print(
        render_episode(
            layout.resolve_home(args.home),
            args.out,
            args.generation,
            args.candidate,
            args.seed,
            EnvParams(env=args.env, episode_length=args.episode_length),
            args.temperature,
            args.scale,
            args.fps,
            args.dream,
        )
    )


if __name__ == "__main__":
    main()
