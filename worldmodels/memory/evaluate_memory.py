"""How well the MDN-RNN predicts k steps ahead, on episodes it never trained on.

    python -m worldmodels.memory.evaluate_memory --steps 1 5 20

On the episodes the memory's training run held out (its run.json), M follows the recorded
z and actions up to step t, then runs open-loop for k steps: each step it draws z' from its own
mixture (at --temperature) and is fed that z' with the recorded action. The mixture it gives
after k - 1 such steps is scored against the recorded z_{t+k}: its negative log-likelihood
(per latent dimension, in nats, as the training loss) and the squared error of its mean. A
"no memory" baseline predicts z_{t+k} = z_t, with a Gaussian whose per-dimension variance is
that of z_{t+k} - z_t on the training episodes, so both columns compare like with like.
Starts t are every --stride steps of each episode. Writes `memory-training/prediction.json`
and `prediction.png`.
"""

from __future__ import annotations

from worldmodels import layout
from worldmodels.cli import add_on_corrupt_argument, make_parser, positive_int


def parse_args(argv: list[str] | None = None):
    parser = make_parser(__doc__.split("\n\n")[0])
    parser.add_argument(
        "--steps",
        type=positive_int,
        nargs="+",
        default=[1, 5, 20],
        help="the k to report: how many steps ahead each prediction reaches",
    )
    parser.add_argument(
        "--stride", type=positive_int, default=25, help="steps between two starts t"
    )
    parser.add_argument(
        "--temperature",
        type=float,
        default=1.0,
        help="of the mixture M draws its own next z from when open-loop",
    )
    parser.add_argument("--seed", type=int, default=0, help="seeds the z draws")
    add_on_corrupt_argument(parser)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    from worldmodels.memory.memory_evaluation import evaluate_memory  # fast --help

    print(
        evaluate_memory(
            layout.resolve_home(args.home),
            args.steps,
            args.stride,
            args.temperature,
            args.seed,
            args.on_corrupt,
        )
    )


if __name__ == "__main__":
    main()
