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

from worldmodels import layout
from worldmodels.cli import (
    add_rollout_arguments,
    add_settings,
    ctrl_c_ends_with,
    make_parser,
    settings_from_args,
)
from worldmodels.params import ControllerParams, EnvParams


def parse_args(argv: list[str] | None = None):
    parser = make_parser(__doc__.split("\n\n")[0])
    # The workers' settings come with the rollout flags; the paper's evaluation is evaluate's.
    add_settings(
        parser,
        ControllerParams,
        exclude=("envs_per_worker", "worker_timeout", "evaluation_episodes"),
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

    home = layout.resolve_home(args.home)
    saved = f"every complete generation is in {layout.generations(home)}; rerun the same "
    with ctrl_c_ends_with(saved + "command to go on after the last one"):
        summary = train_controller(
            home,
            settings_from_args(ControllerParams, args),
            env_params=EnvParams(env=args.env, episode_length=args.episode_length),
            num_process=args.num_process,
            backend=args.backend,
            ray_address=args.ray_address,
        )
    print(summary)


if __name__ == "__main__":
    main()
