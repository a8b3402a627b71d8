"""Evaluate a trained agent the paper's way: mean ± std of total reward over 100 random tracks.

    python -m worldmodels.control.evaluate --generation best --episodes 100

Uses the VAE and MDN-RNN of the experiments home and a controller from
`control/generations/`. Writes `control/evaluations/generation_N-<candidate>.json`, or
`...-seedS.json` for `--seed S` other than 0 (every episode's reward, track seed, steps and
whether the car finished its lap: a lap finished at step T scores 1000 - 0.1 T, so a score of
900 or more needs one) and a histogram PNG next to it. The controller reads z as it was
trained to (`train_controller --latent`); `--latent` reading it the other way, a diagnostic,
names the report `...-zmode...` or `...-zsample...`. `--compare-with` pairs the evaluation
with other agents' reports on the same tracks (the rule that replaces a shipped agent).
"""

from __future__ import annotations

from worldmodels import layout
from worldmodels.cli import (
    add_compare_with_argument,
    add_rollout_arguments,
    ctrl_c_ends_with,
    make_parser,
    non_negative_int,
    positive_int,
)
from worldmodels.params import LATENT_READINGS, EnvParams
from worldmodels.seeds import TEST_TRACKS_SEED


def parse_args(argv: list[str] | None = None):
    parser = make_parser(__doc__.split("\n\n")[0])
    parser.add_argument(
        "--generation", default="best", help="N, max (the latest) or best (the best evaluated mean)"
    )
    parser.add_argument(
        "--candidate",
        choices=("mean", "best"),
        default="mean",
        help="the generation's distribution mean, or its fittest candidate",
    )
    parser.add_argument(
        "--episodes",
        type=positive_int,
        default=100,
        help="episodes, each on a new random track (the paper: 100)",
    )
    parser.add_argument(
        "--seed",
        type=non_negative_int,
        default=TEST_TRACKS_SEED,
        help="seeds the tracks: 0 the paper's evaluation (the shipped card's), another seed "
        "other unseen tracks, e.g. to choose a generation on before evaluating it on seed 0's",
    )
    parser.add_argument(
        "--latent",
        choices=LATENT_READINGS,
        help="the z the controller reads each step, instead of the way it was trained to "
        "(default): sample, a draw from q(z|x); mode, its most likely value (mu). A "
        "diagnostic of how much a controller relies on the draw's noise (report named "
        "...-zmode... or ...-zsample...)",
    )
    add_compare_with_argument(
        parser,
        "prints this minus each, paired track by track (the same --seed and --episodes), "
        "and whether it is more than two standard errors",
    )
    add_rollout_arguments(parser)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    # After parsing: --help stays fast.
    from worldmodels.control.evaluation import evaluate_agent
    from worldmodels.records import read_reports

    others = read_reports(args.compare_with)
    with ctrl_c_ends_with("no report written (it is written whole at the end); rerun to evaluate"):
        summary = evaluate_agent(
            layout.resolve_home(args.home),
            args.generation,
            args.candidate,
            args.episodes,
            args.seed,
            args.latent,
            EnvParams(env=args.env, episode_length=args.episode_length),
            num_process=args.num_process,
            envs_per_worker=args.envs_per_worker,
            worker_timeout=args.worker_timeout,
            backend=args.backend,
            ray_address=args.ray_address,
            compare_with=others,
        )
    print(summary)


if __name__ == "__main__":
    main()
