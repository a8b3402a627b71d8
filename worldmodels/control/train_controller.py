"""Stage 5: train the linear controller with CMA-ES on full-agent rollouts.

    python -m worldmodels.control.train_controller --generations 500 --popsize 64 \
        --episodes-per-candidate 16 --num-process 64

Each generation asks CMA-ES for `popsize` controllers, runs each on the same
`episodes-per-candidate` random tracks (common to the generation, new every generation) with
the trained V and M from the experiments home, and tells CMA-ES the mean total rewards.
Writes `<home>/control/generations/generation_N/` (see worldmodels/control/generations.py).
Rerunning the same command after any interruption resumes after the last complete generation
with the optimizer state it saved. When the candidates' fitness differences drown in the luck
of their tracks late in a run (`fitness_noise` in each summary), a resume may change
`--episodes-per-candidate` (CMA-ES's state does not depend on it) and `--popsize` (CMA-ES
restarts from its current distribution), and `--latent` (the search goes on from its
distribution with controllers reading z the new way): `control/run.json` keeps each earlier
phase's command in `earlier_phases`, and each generation's summary its episodes and latent.
"""

from __future__ import annotations

import dataclasses

from worldmodels import layout
from worldmodels.cli import add_rollout_arguments, make_parser, non_negative_int, positive_int
from worldmodels.params import (
    ACTION_MODES,
    CONTROLLER_INPUTS,
    LATENT_READINGS,
    ControllerParams,
    EnvParams,
)


def parse_args(argv: list[str] | None = None):
    defaults = ControllerParams()
    parser = make_parser(__doc__.split("\n\n")[0])
    parser.add_argument(
        "--generations",
        type=positive_int,
        default=defaults.generations,
        help="total generations of the run; raise it and rerun to go on",
    )
    parser.add_argument(
        "--popsize", type=positive_int, default=defaults.popsize, help="controllers per generation"
    )
    parser.add_argument(
        "--episodes-per-candidate",
        type=positive_int,
        default=defaults.episodes_per_candidate,
        help="episodes averaged into each controller's fitness; may change on resume",
    )
    parser.add_argument(
        "--sigma0",
        type=float,
        default=defaults.sigma0,
        help="initial CMA-ES step size around x0 = 0 (the write-up used 0.5)",
    )
    parser.add_argument(
        "--cma-diagonal",
        action="store_true",
        help="diagonal covariance (pycma's CMA_diagonal): ~100x faster "
        "adaptation at 867 parameters",
    )
    parser.add_argument(
        "--eval-every",
        type=non_negative_int,
        default=defaults.eval_every,
        help="evaluate the distribution mean on fresh tracks every K generations (0: never)",
    )
    parser.add_argument(
        "--eval-episodes",
        type=positive_int,
        default=defaults.eval_episodes,
        help="episodes of each evaluation",
    )
    parser.add_argument(
        "--seed", type=non_negative_int, default=0, help="seeds the tracks and CMA-ES's samples"
    )
    parser.add_argument(
        "--keep-optimizer-states",
        type=non_negative_int,
        default=defaults.keep_optimizer_states,
        help="latest generations that keep optimizer.pkl, ~12 MB each (0: all)",
    )
    parser.add_argument(
        "--controller-inputs",
        choices=CONTROLLER_INPUTS,
        default=defaults.controller_inputs,
        help="zh: z and the MDN-RNN's features (the paper's agent); z: z alone, the V-only agent "
        "(no MDN-RNN needed; the only choice on a discrete VAE)",
    )
    parser.add_argument(
        "--actions",
        type=int,
        choices=ACTION_MODES,
        default=defaults.actions,
        help="controller outputs: 3, (steer, gas, brake) as the paper; 2, (steer, throttle) with "
        "throttle > 0 gas and < 0 brake. The environment always gets all three",
    )
    parser.add_argument(
        "--latent",
        choices=LATENT_READINGS,
        default=defaults.latent,
        help="the z the controller reads each step: sample, a draw from q(z|x) (the paper's); "
        "mode, its most likely value (mu), without the draw's noise. Recorded with each "
        "generation, read back by evaluate, render and sample_policy; may change on resume",
    )
    parser.add_argument(
        "--stall-steps",
        type=non_negative_int,
        default=defaults.stall_steps,
        help="end a training episode once it has gained no new track tile for this many steps, "
        "counting -0.1 for every step left, what a stalled car collects (0: never). "
        "Evaluations always run whole episodes",
    )
    parser.add_argument(
        "--in-dream",
        action="store_true",
        help="fitness from dream episodes in M (needs train_memory --reward-done-heads), all "
        "run in this process; mid-training evaluations still drive CarRacing",
    )
    parser.add_argument(
        "--dream-temperature",
        type=float,
        default=defaults.dream_temperature,
        help="with --in-dream: temperature of M's mixture (logits / tau, sigma * sqrt(tau))",
    )
    add_rollout_arguments(parser)
    args = parser.parse_args(argv)
    if args.dream_temperature <= 0:
        parser.error(f"--dream-temperature must be positive, got {args.dream_temperature}")
    if args.in_dream and args.latent == "mode":
        parser.error(
            "--latent mode reads the mode of q(z|x) of real frames, and a dream's z are the "
            "MDN-RNN's samples: train in the dream with --latent sample"
        )
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    from worldmodels.control.controller_training import train_controller  # fast --help

    params = dataclasses.replace(
        ControllerParams(),
        popsize=args.popsize,
        episodes_per_candidate=args.episodes_per_candidate,
        sigma0=args.sigma0,
        generations=args.generations,
        cma_diagonal=args.cma_diagonal,
        eval_every=args.eval_every,
        eval_episodes=args.eval_episodes,
        envs_per_worker=args.envs_per_worker,
        worker_timeout=args.timeout,
        keep_optimizer_states=args.keep_optimizer_states,
        controller_inputs=args.controller_inputs,
        actions=args.actions,
        stall_steps=args.stall_steps,
        latent=args.latent,
        in_dream=args.in_dream,
        dream_temperature=args.dream_temperature,
    )
    print(
        train_controller(
            layout.resolve_home(args.home),
            params,
            seed=args.seed,
            env_params=EnvParams(env=args.env, episode_length=args.episode_length),
            num_process=args.num_process,
            backend=args.backend,
            ray_address=args.ray_address,
            flags=vars(args),
        )
    )


if __name__ == "__main__":
    main()
