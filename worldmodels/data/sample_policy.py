"""Stage 1: sample CarRacing episodes into the experiments home.

    python -m worldmodels.data.sample_policy --policy random --episodes 100 --num-process 2
    python -m worldmodels.data.sample_policy --policy controller --generation best --episodes 5000
    python -m worldmodels.data.sample_policy --policy controller --dataset controller-3 --seed 2

Writes `<home>/<policy>-rollouts/episode-NNNNNN.tfrecord` (`<home>/<dataset>-rollouts/` with
--dataset), one file per episode index in [--start-episode, --episodes). Episode i always gets
the same env seed (derived from --seed and i), so rerunning a command skips the episodes
already written and samples only the rest.
"""

from __future__ import annotations

from worldmodels import layout
from worldmodels.cli import (
    add_rollout_arguments,
    add_settings,
    ctrl_c_ends_with,
    dataset_name,
    make_parser,
    non_negative_int,
)
from worldmodels.params import POLICIES, EnvParams, SamplingParams


def parse_args(argv: list[str] | None = None):
    parser = make_parser(__doc__.split("\n\n")[0])
    parser.add_argument(
        "--policy",
        choices=POLICIES,
        default="random",
        help="random: uniform white noise each step; brownian: a random walk in action space; "
        "agent-random: the paper's random agent, a random controller on random V and M, "
        "all three redrawn every episode; "
        "controller: the trained agent of the home (see --generation)",
    )
    parser.add_argument(
        "--dataset",
        type=dataset_name,
        help="write <home>/<dataset>-rollouts, or <home>/<policy>-rollouts when unset; name a "
        "later iteration's episodes, e.g. controller-3 beside iteration two's controller",
    )
    parser.add_argument(
        "--generation",
        default="best",
        help="with --policy controller: N, max (the latest) or best (the best evaluated mean)",
    )
    parser.add_argument(
        "--parameter-noise",
        type=float,
        default=0.0,
        help="with --policy controller: each episode drives the controller plus Gaussian noise "
        "of this sd on every parameter, drawn from its own seed (data of the failures nearby "
        "controllers make, for M)",
    )
    add_settings(parser, SamplingParams, "episodes", "seed", "brownian_dt")
    parser.add_argument(
        "--start-episode",
        "--start_episode",
        type=non_negative_int,
        default=0,
        help="first episode index; episodes already written are skipped either way",
    )
    add_rollout_arguments(parser)
    args = parser.parse_args(argv)
    args.dataset = args.dataset or args.policy
    if args.parameter_noise < 0 or (args.parameter_noise and args.policy != "controller"):
        parser.error(
            f"--parameter-noise {args.parameter_noise}: expected a sd >= 0, with --policy "
            "controller"
        )
    if args.start_episode >= args.episodes:
        parser.error(
            f"--start-episode {args.start_episode} must be below --episodes {args.episodes}"
        )
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    from worldmodels.control.sampling import sample_episodes  # after parsing: fast --help

    home = layout.resolve_home(args.home)
    kept = f"every episode written is in {layout.rollouts(home, args.dataset)}; rerun the same "
    with ctrl_c_ends_with(kept + "command to sample the rest"):
        summary = sample_episodes(
            home,
            args.policy,
            args.dataset,
            args.episodes,
            EnvParams(env=args.env, episode_length=args.episode_length),
            start_episode=args.start_episode,
            seed=args.seed,
            generation=args.generation,
            parameter_noise=args.parameter_noise,
            brownian_dt=args.brownian_dt,
            num_process=args.num_process,
            envs_per_worker=args.envs_per_worker,
            worker_timeout=args.worker_timeout,
            backend=args.backend,
            ray_address=args.ray_address,
        )
    print(summary)


if __name__ == "__main__":
    main()
