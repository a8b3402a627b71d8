"""All five stages in one command, sized by a preset: sample, VAE, latent stats, MDN-RNN,
controller, then the paper's evaluation.

    python -m worldmodels.pipeline --preset tiny          # minutes on a laptop
    python -m worldmodels.pipeline --preset paper         # the full-size run

Each stage is the stage's own command with the preset's settings, so rerunning the pipeline
after an interruption skips what is done and resumes what is not. `--set section.key=value`
overrides one setting of the preset (keys as in worldmodels/params.py).
"""

from __future__ import annotations

import hashlib
import json
import multiprocessing
import tempfile
from pathlib import Path

from worldmodels import __version__, layout
from worldmodels.cli import add_backend_arguments, make_parser, positive_int
from worldmodels.params import PRESETS, VAE_SCHEDULES, ConfigError, config_from_dict


def parse_overrides(assignments: list[str]) -> dict:
    """["vae.epochs=3", "env.env=stock"] -> {"vae": {"epochs": 3}, "env": {"env": "stock"}}.

    Values are JSON (3, 0.5, true) or, failing that, plain strings.
    """
    overrides: dict = {}
    for assignment in assignments:
        key, separator, text = assignment.partition("=")
        section, dot, name = key.partition(".")
        if not separator or not dot:
            raise ConfigError(f"--set {assignment!r}: expected section.key=value")
        try:
            value = json.loads(text)
        except json.JSONDecodeError:
            value = text
        overrides.setdefault(section, {})[name] = value
    return overrides


def as_flags(params, *names: str) -> list[str]:
    """["--name-with-dashes", "value", ...] for the named fields of a params dataclass: a
    stage's flag is named after the setting it takes."""
    return [
        part
        for name in names
        for part in (f"--{name.replace('_', '-')}", str(getattr(params, name)))
    ]


def agent_home(home: str | None = None) -> Path:
    """An experiments home with a trained agent, for notebooks and quick looks.

    The given (or default) home when it holds VAE and MDN-RNN checkpoints and a controller
    generation; otherwise a tiny one, trained once with `--preset tiny` (under a minute on two
    cores) in the system's temporary folder and reused afterwards (a new one when the package
    version or the tiny preset changes).
    """
    import tensorflow as tf

    from worldmodels.control.generations import complete_generations

    def trained(candidate: Path) -> bool:
        return all(
            tf.train.latest_checkpoint(str(run / layout.CHECKPOINTS)) is not None
            for run in (layout.vae_training(candidate), layout.memory_training(candidate))
        ) and bool(complete_generations(candidate))

    chosen = layout.resolve_home(home)
    if trained(chosen):
        return chosen
    # Named after the package version and the tiny preset, so a home trained by an older
    # version or with other settings is not mistaken for this one.
    identity = json.dumps([__version__, PRESETS["tiny"].to_dict()], sort_keys=True)
    digest = hashlib.sha256(identity.encode()).hexdigest()[:12]
    tiny = Path(tempfile.gettempdir()) / f"world-models-tiny-home-{digest}"
    if not trained(tiny):
        main(["--preset", "tiny", "--home", str(tiny)])
    return tiny


def main(argv: list[str] | None = None) -> None:
    parser = make_parser(__doc__.split("\n\n")[0])
    parser.add_argument(
        "--preset",
        choices=sorted(PRESETS),
        default="tiny",
        help="tiny: a few short episodes, one epoch, two generations; budget: the first "
        "agent's ~24 CPU-hour run; paper: the paper's sizes",
    )
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="SECTION.KEY=VALUE",
        help="override one setting of the preset; repeatable",
    )
    parser.add_argument(
        "--num-process",
        type=positive_int,
        default=multiprocessing.cpu_count(),
        help="worker processes for sampling, training and evaluating",
    )
    add_backend_arguments(parser)
    args = parser.parse_args(argv)
    try:
        config = config_from_dict(parse_overrides(args.set), base=PRESETS[args.preset])
    except ConfigError as error:
        parser.error(str(error))
    home = layout.resolve_home(args.home)
    home.mkdir(parents=True, exist_ok=True)
    config.save(layout.pipeline_config(home))

    from worldmodels.control import evaluate, train_controller
    from worldmodels.data import sample_latent_stats, sample_policy
    from worldmodels.memory import train_memory
    from worldmodels.vision import train_vae

    sampling, vae, memory, controller = (
        config.sampling,
        config.vae,
        config.memory,
        config.controller,
    )
    dataset = ["--dataset", sampling.policy]
    rollout_flags = [
        "--num-process", str(args.num_process),
        *as_flags(controller, "envs_per_worker"),
        *as_flags(config.env, "episode_length", "env"),
        "--timeout", str(controller.worker_timeout),
        "--backend", args.backend,
        *(["--ray-address", args.ray_address] if args.ray_address else []),
    ]  # fmt: skip
    stages = [
        (
            f"sample {sampling.policy} rollouts",
            sample_policy.main,
            [
                *as_flags(sampling, "policy", "episodes", "seed", "brownian_dt"),
                *rollout_flags,
            ],
        ),
        (
            "train the VAE",
            train_vae.main,
            [
                *dataset,
                *as_flags(vae, "latent", *VAE_SCHEDULES, "epochs", "batch_size", "learning_rate"),
                *as_flags(vae, "kl_tolerance", "validation_share"),
            ],
        ),
        ("encode the episodes", sample_latent_stats.main, dataset),
        (
            "train the MDN-RNN",
            train_memory.main,
            [
                *dataset,
                *as_flags(
                    memory,
                    "memory", "attention_window", "lstm_units", "num_mixtures", "epochs",
                    "batch_size", "learning_rate", "final_learning_rate", "gradient_clip",
                    "validation_share",
                ),
                *(["--reward-done-heads"] if memory.reward_done_heads else []),
            ],
        ),
        (
            "train the controller",
            train_controller.main,
            [
                *as_flags(
                    controller,
                    "generations", "popsize", "episodes_per_candidate", "sigma0", "eval_every",
                    "eval_episodes", "keep_optimizer_states", "controller_inputs", "actions",
                ),
                *(["--cma-diagonal"] if controller.cma_diagonal else []),
                *(["--in-dream"] if controller.in_dream else []),
                *as_flags(controller, "dream_temperature", "stall_steps", "latent"),
                *rollout_flags,
            ],
        ),
        (
            "evaluate the agent",
            evaluate.main,
            [
                "--generation", "best",
                "--episodes", str(controller.evaluation_episodes),
                *rollout_flags,
            ],
        ),
    ]  # fmt: skip
    if controller.controller_inputs == "z":  # the V-only agent needs no MDN-RNN
        stages = [s for s in stages if s[1] not in (sample_latent_stats.main, train_memory.main)]
    for number, (name, stage, flags) in enumerate(stages, start=1):
        print(f"== stage {number}/{len(stages)}: {name}", flush=True)
        stage(["--home", str(home), *flags])
    print(f"pipeline ({args.preset}) complete; everything is under {home}")


if __name__ == "__main__":
    main()
