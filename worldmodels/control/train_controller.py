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
import json
import sys
import time
from functools import partial

import numpy as np
import tensorflow as tf

from worldmodels import layout
from worldmodels.cli import add_rollout_arguments, make_parser, non_negative_int, positive_int
from worldmodels.control.cma_es import make_optimizer, restart_with_popsize
from worldmodels.control.controller import (
    ACTION_MODES,
    CONTROLLER_INPUTS,
    ControllerSpec,
    parameter_count,
)
from worldmodels.control.dream import home_dream
from worldmodels.control.generations import (
    complete_generations,
    controller_spec,
    load_optimizer,
    prune_optimizer_states,
    save_generation,
    trained_on,
)
from worldmodels.control.rollouts import (
    EpisodeTask,
    RolloutWorker,
    rollout_config,
    run_episode_tasks,
)
from worldmodels.files import atomic_write_text
from worldmodels.params import LATENT_READINGS, ControllerParams, EnvParams
from worldmodels.seeds import SEED_SCHEME, Stream, derive_seed
from worldmodels.training import changed_settings
from worldmodels.workers import WorkerError, open_pool
from worldmodels.world_model import build_world_model, fingerprint, require_trained_models


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
    home = layout.resolve_home(args.home)
    spec = ControllerSpec(args.controller_inputs, args.actions)
    require_trained_models(home, spec.uses_memory)
    vae, memory = build_world_model(home, spec.uses_memory)
    world_model = fingerprint(vae, memory)
    features = vae.code_width + (memory.feature_dim if memory is not None else 0)
    dimension = parameter_count(features, spec.actions)
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
        controller_inputs=spec.inputs,
        actions=spec.actions,
        stall_steps=args.stall_steps,
        latent=args.latent,
        in_dream=args.in_dream,
        dream_temperature=args.dream_temperature,
    )
    settings = {
        "controller_inputs": spec.inputs,
        "actions": spec.actions,
        "popsize": params.popsize,
        "episodes_per_candidate": params.episodes_per_candidate,
        "sigma0": params.sigma0,
        "cma_diagonal": params.cma_diagonal,
        "seed": args.seed,
        "episode_length": args.episode_length,
        "seed_scheme": SEED_SCHEME,
        "controller_parameters": dimension,
        "stall_steps": params.stall_steps,
        "latent": params.latent,
        "in_dream": params.in_dream,
        "dream_temperature": params.dream_temperature if params.in_dream else None,
    }
    run_file = layout.control_run_file(home)
    done = complete_generations(home)
    earlier_phases = []
    if done:
        # A run recorded before these were settings trained the paper's controller.
        recorded = layout.recorded_run(layout.control(home))
        spec_recorded = controller_spec(home)
        saved = {
            **recorded["settings"],
            "controller_inputs": spec_recorded.inputs,
            "actions": spec_recorded.actions,
        }
        saved.setdefault("latent", "sample")
        changeable = {"episodes_per_candidate": None, "popsize": None, "latent": None}
        changes = changed_settings(
            {**saved, **changeable},
            {**settings, **changeable},
            added_later={"stall_steps": 0, "in_dream": False, "dream_temperature": None},
        )
        if changes:
            sys.exit(
                f"error: {home / 'control'} holds a run with other settings ({changes}); "
                "rerun with the same settings to resume it, or use another --home"
            )
        optimizer = load_optimizer(home, done[-1])
        first = done[-1] + 1
        earlier_phases = recorded.get("earlier_phases", [])
        if first >= params.generations:  # a rerun of a finished run: nothing to record either
            print(
                f"the controller already has {first} generations in {layout.generations(home)}; "
                "raise --generations to train on"
            )
            return
        if any(saved[name] != settings[name] for name in changeable):
            earlier_phases.append({"until_generation": first, "command": recorded["command"]})
        if any(saved[name] != settings[name] for name in ("popsize", "episodes_per_candidate")):
            print(
                f"popsize x episodes per candidate {saved['popsize']} x "
                f"{saved['episodes_per_candidate']} -> {params.popsize} x "
                f"{params.episodes_per_candidate} from generation {first} on"
            )
        if saved["latent"] != params.latent:
            print(f"the controllers read z's {params.latent} from generation {first} on")
        if saved["popsize"] != params.popsize:
            optimizer = restart_with_popsize(
                optimizer, params.popsize, derive_seed(args.seed, Stream.OPTIMIZER, first)
            )
            print("CMA-ES restarts from its distribution (mean, sigma, coordinate stds)")
        print(f"resuming after generation {done[-1]} in {home / 'control' / 'generations'}")
        if not trained_on(home, done[-1], world_model):
            print(
                f"V and M changed since generation {done[-1]}: the search goes on from its "
                "distribution on the new ones (a warm start)"
            )
    else:
        optimizer = make_optimizer(
            dimension,
            params.sigma0,
            params.popsize,
            derive_seed(args.seed, Stream.OPTIMIZER),
            params.cma_diagonal,
        )
        first = 0
    dream = None
    if params.in_dream:  # once the run's settings are known to fit, before it is recorded
        try:
            dream = home_dream(home, spec, params.dream_temperature, args.episode_length)
        except (ValueError, FileNotFoundError) as error:
            sys.exit(f"error: --in-dream: {error}")
    atomic_write_text(
        run_file,
        json.dumps(
            {
                "settings": settings,
                "config": dataclasses.asdict(params),
                "command": vars(args),
                "earlier_phases": earlier_phases,
            },
            indent=2,
        ),
    )

    config = rollout_config(
        home,
        EnvParams(env=args.env, episode_length=args.episode_length),
        params.envs_per_worker,
        spec,
        params.latent,
        args.backend,
    )
    summaries = tf.summary.create_file_writer(str(layout.control_tensorboard(home)))
    try:
        with open_pool(
            args.backend,
            partial(RolloutWorker, config),
            args.num_process,
            params.worker_timeout,
            args.ray_address,
        ) as pool:
            for generation in range(first, params.generations):
                started = time.monotonic()
                population = np.asarray(optimizer.ask())
                seeds = [
                    derive_seed(args.seed, Stream.TRAINING_TRACKS, generation, j)
                    for j in range(params.episodes_per_candidate)
                ]
                candidates = range(len(population))
                tasks = [
                    EpisodeTask(
                        (candidate, j), population[candidate], seed, stall_steps=params.stall_steps
                    )
                    for candidate in candidates
                    for j, seed in enumerate(seeds)
                ]
                if dream is not None:
                    results = {result.key: result for result in dream.run(tasks)}
                else:
                    results = run_episode_tasks(
                        pool, tasks, params.envs_per_worker, f"generation {generation}"
                    )
                rewards = np.array(
                    [
                        [results[(candidate, j)].total_reward for j in range(len(seeds))]
                        for candidate in candidates
                    ]
                )
                fitness = rewards.mean(axis=1)
                optimizer.tell(list(population), list(-fitness))  # CMA-ES minimises
                seconds = time.monotonic() - started
                summary = {
                    "generation": generation,
                    "best_fitness": float(fitness.max()),
                    "mean_fitness": float(fitness.mean()),
                    "worst_fitness": float(fitness.min()),
                    "sigma": float(optimizer.sigma),
                    "episodes": len(tasks),
                    "steps": int(sum(result.steps for result in results.values())),
                    "stalled_episodes": int(sum(result.stalled for result in results.values())),
                    "fitness_noise": fitness_noise(rewards),
                    "seconds": seconds,
                    "episodes_per_second": len(tasks) / seconds,
                    "track_seeds": seeds,
                    "seed_scheme": SEED_SCHEME,
                    "world_model": world_model,
                    "latent": params.latent,
                }
                if dream is not None:  # fitness predicted by M, not scored by CarRacing
                    summary["dream"] = {"temperature": params.dream_temperature}
                mean = np.asarray(optimizer.result.xfavorite)
                if params.eval_every and (generation + 1) % params.eval_every == 0:
                    summary["evaluation"] = evaluate_mean(pool, mean, args.seed, generation, params)
                save_generation(
                    home,
                    generation,
                    {
                        "population": population,
                        "rewards": rewards,
                        "fitness": fitness,
                        "best": population[int(fitness.argmax())],
                        "mean": mean,
                    },
                    optimizer,
                    summary,
                )
                prune_optimizer_states(home, params.keep_optimizer_states)
                write_summaries(summaries, summary)
                print(generation_line(summary), flush=True)
    except WorkerError as error:
        sys.exit(f"error: {error}")
    print(
        f"trained the controller for {params.generations} generations; "
        f"generations in {home / 'control' / 'generations'}"
    )


def fitness_noise(rewards: np.ndarray) -> dict | None:
    """How far a generation's ranking is above the luck of its tracks, from its rewards
    (candidates x the generation's common tracks), by a two-way analysis of variance without
    replication: `candidate_sd`, the spread of the candidates' true fitness; `episode_noise_sd`,
    an episode's deviation from its candidate's and its track's effects (the luck a track holds
    for one candidate and not another; a track easy for all does not change the ranking);
    `signal_to_noise`, candidate_sd over the noise of a fitness (episode_noise_sd / sqrt(tracks)).
    Where it stays below ~0.8, CMA-ES selects mostly on luck: more episodes per candidate or
    more candidates pay (docs/history.md). None with fewer than 2 candidates or tracks, or no
    noise at all."""
    candidates, tracks = rewards.shape
    if candidates < 2 or tracks < 2:
        return None
    candidate_effects = rewards.mean(axis=1) - rewards.mean()
    residuals = (
        rewards - rewards.mean(axis=1, keepdims=True) - rewards.mean(axis=0) + rewards.mean()
    )
    residual_variance = (residuals**2).sum() / ((candidates - 1) * (tracks - 1))
    if residual_variance == 0:
        return None
    candidate_mean_square = tracks * (candidate_effects**2).sum() / (candidates - 1)
    # The expected candidate mean square is tracks * var(true fitness) + residual variance.
    candidate_sd = np.sqrt(max(0.0, (candidate_mean_square - residual_variance) / tracks))
    return {
        "candidate_sd": float(candidate_sd),
        "episode_noise_sd": float(np.sqrt(residual_variance)),
        "signal_to_noise": float(candidate_sd / np.sqrt(residual_variance / tracks)),
    }


def evaluate_mean(pool, mean, seed: int, generation: int, params: ControllerParams) -> dict:
    """Total rewards of the distribution mean on `eval_episodes` tracks never trained on, and
    on how many of them it finished the lap."""
    tasks = [
        EpisodeTask(j, mean, derive_seed(seed, Stream.TRAINING_EVALUATION_TRACKS, generation, j))
        for j in range(params.eval_episodes)
    ]
    results = run_episode_tasks(pool, tasks, params.envs_per_worker, "evaluating the mean")
    episodes = [results[j] for j in range(params.eval_episodes)]
    rewards = [episode.total_reward for episode in episodes]
    laps = sum(episode.lap_finished for episode in episodes)
    return {
        "mean": float(np.mean(rewards)),
        "std": float(np.std(rewards)),
        "rewards": rewards,
        "laps_finished": laps,
    }


def write_summaries(writer, summary: dict) -> None:
    """Fitness curves and their signal/noise, step size and speed of a generation, and its
    evaluation (the mean's score and share of finished laps), for TensorBoard."""
    with writer.as_default(step=summary["generation"]):
        for name in ("best", "mean", "worst"):
            tf.summary.scalar(f"fitness/{name}", summary[f"{name}_fitness"])
        tf.summary.scalar("sigma", summary["sigma"])
        tf.summary.scalar("episodes_per_second", summary["episodes_per_second"])
        if summary["fitness_noise"]:
            tf.summary.scalar(
                "fitness/signal_to_noise", summary["fitness_noise"]["signal_to_noise"]
            )
        if "evaluation" in summary:
            evaluation = summary["evaluation"]
            tf.summary.scalar("evaluation/mean", evaluation["mean"])
            laps = evaluation["laps_finished"] / len(evaluation["rewards"])
            tf.summary.scalar("evaluation/laps_finished", laps)
    writer.flush()


def generation_line(summary: dict) -> str:
    where = f" (in the dream, tau {summary['dream']['temperature']})" if "dream" in summary else ""
    line = (
        f"generation {summary['generation']}{where}: best {summary['best_fitness']:.1f} "
        f"mean {summary['mean_fitness']:.1f} worst {summary['worst_fitness']:.1f} "
        f"sigma {summary['sigma']:.4f} | {summary['episodes_per_second']:.2f} episodes/s"
    )
    if summary["fitness_noise"]:
        line += f" | signal/noise {summary['fitness_noise']['signal_to_noise']:.2f}"
    if "evaluation" in summary:
        evaluation = summary["evaluation"]
        line += (
            f" | mean controller {evaluation['mean']:.1f} ± {evaluation['std']:.1f}, "
            f"{evaluation['laps_finished']}/{len(evaluation['rewards'])} laps finished"
        )
    return line


if __name__ == "__main__":
    main()
