"""Stage 5's training loop: CMA-ES on full-agent rollouts, one complete generation at a time,
resumable (`worldmodels.control.train_controller`, its command, says what it writes)."""

from __future__ import annotations

import dataclasses
import json
import sys
import time
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import numpy as np
import tensorflow as tf

from worldmodels import layout
from worldmodels.control.cma_es import make_optimizer, restart_with_popsize
from worldmodels.control.controller import ControllerSpec, parameter_count
from worldmodels.control.dream import home_dream
from worldmodels.control.generations import (
    complete_generations,
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
from worldmodels.files import atomic_write_text, exclusive_use
from worldmodels.params import ControllerParams, EnvParams, new_phase_settings, run_settings
from worldmodels.records import command_record, read_run, stamped
from worldmodels.seeds import SEED_SCHEME, Stream, derive_seed
from worldmodels.training import changed_settings, fingerprint
from worldmodels.workers import WorkerError, open_pool
from worldmodels.world_model import build_world_model, require_trained_models

# Settings a resume may change: CMA-ES's state does not depend on them (a new popsize
# restarts it from its distribution).
CHANGEABLE_ON_RESUME = new_phase_settings(ControllerParams)


@dataclass
class Start:
    """Where a run starts: the optimizer, its first generation, the earlier phases' commands."""

    optimizer: object
    first: int
    earlier_phases: list


def train_controller(
    home: Path,
    params: ControllerParams,
    *,
    env_params: EnvParams = EnvParams(),
    num_process: int = 1,
    backend: str = "local",
    ray_address: str | None = None,
) -> str:
    """Trains (or resumes) the home's CMA-ES run through generation `params.generations` - 1,
    each generation saved whole before the next; the call is recorded in control/run.json
    as its command's flags. Returns the summary line; exits with a message when the run's settings
    or the home do not fit."""
    spec = ControllerSpec(params.controller_inputs, params.actions)
    require_trained_models(home, spec.uses_memory)
    vae, memory = build_world_model(home, spec.uses_memory)
    world_model = fingerprint(vae, memory)
    features = vae.code_width + (memory.feature_dim if memory is not None else 0)
    settings = {
        **run_settings(params),
        "episode_length": env_params.episode_length,
        "seed_scheme": SEED_SCHEME,
        "controller_parameters": parameter_count(features, spec.actions),
    }
    with exclusive_use(layout.control(home), "a CMA-ES run"):
        start = resume(home, settings, params, world_model)
        if start is None:
            return (
                f"the controller already has {params.generations} generations in "
                f"{layout.generations(home)}; raise --generations to train on"
            )
        dream = None
        if params.in_dream:  # once the run's settings are known to fit, before it is recorded
            try:
                length = params.dream_horizon or env_params.episode_length
                dream = home_dream(
                    home, spec, params.dream_temperature, length, params.dream_disagreement_penalty
                )
            except (ValueError, FileNotFoundError) as error:
                sys.exit(f"error: --in-dream: {error}")
        atomic_write_text(
            layout.control_run_file(home),
            json.dumps(
                stamped(
                    {
                        "settings": settings,
                        "config": dataclasses.asdict(params),
                        "command": command_record(
                            home,
                            params,
                            env_params,
                            num_process=num_process,
                            backend=backend,
                            ray_address=ray_address,
                        ),
                        "earlier_phases": start.earlier_phases,
                    }
                ),
                indent=2,
            ),
        )

        config = rollout_config(
            home, env_params, params.envs_per_worker, spec, params.latent, backend
        )
        writer = tf.summary.create_file_writer(str(layout.control_tensorboard(home)))
        try:
            with open_pool(
                backend,
                partial(RolloutWorker, config),
                num_process,
                params.worker_timeout,
                ray_address,
            ) as pool:
                for generation in range(start.first, params.generations):
                    started, cpu_started = time.monotonic(), time.process_time()
                    population = np.asarray(start.optimizer.ask())
                    rewards, results = candidate_rewards(
                        pool, dream, population, generation, params
                    )
                    fitness = rewards.mean(axis=1)
                    start.optimizer.tell(list(population), list(-fitness))  # CMA-ES minimises
                    summary = generation_summary(
                        generation,
                        start.optimizer,
                        rewards,
                        results,
                        time.monotonic() - started,
                        time.process_time() - cpu_started,
                    )
                    summary.update(world_model=world_model, latent=params.latent)
                    if dream is not None:  # fitness predicted by M, not scored by CarRacing
                        summary["dream"] = {
                            "temperature": params.dream_temperature,
                            "horizon": params.dream_horizon or env_params.episode_length,
                            "disagreement_penalty": params.dream_disagreement_penalty,
                        }
                    mean = np.asarray(start.optimizer.result.xfavorite)
                    if params.eval_every and (generation + 1) % params.eval_every == 0:
                        summary["evaluation"] = evaluate_mean(pool, mean, generation, params)
                    arrays = {
                        "population": population,
                        "rewards": rewards,
                        "fitness": fitness,
                        "best": population[int(fitness.argmax())],
                        "mean": mean,
                    }
                    save_generation(home, generation, arrays, start.optimizer, summary)
                    prune_optimizer_states(home, params.keep_optimizer_states)
                    write_summaries(writer, summary)
                    print(generation_line(summary), flush=True)
        except WorkerError as error:
            sys.exit(f"error: {error}")
        return (
            f"trained the controller for {params.generations} generations; "
            f"generations in {layout.generations(home)}"
        )


def resume(home: Path, settings: dict, params: ControllerParams, world_model: str) -> Start | None:
    """A new run's start, or where the home's run resumes: after its last complete generation,
    with a new phase when a setting of CHANGEABLE_ON_RESUME changed (printed). None when the
    run has its `params.generations` already; exits when other settings differ."""
    done = complete_generations(home)
    if not done:
        optimizer = make_optimizer(
            settings["controller_parameters"],
            params.sigma0,
            params.popsize,
            derive_seed(params.seed, Stream.OPTIMIZER),
            params.cma_diagonal,
        )
        return Start(optimizer, 0, [])
    recorded = read_run(layout.control(home))
    saved = recorded["settings"]
    changeable = dict.fromkeys(CHANGEABLE_ON_RESUME)
    changes = changed_settings({**saved, **changeable}, {**settings, **changeable})
    if changes:
        sys.exit(
            f"error: {layout.control(home)} holds a run with other settings ({changes}); "
            "rerun with the same settings to resume it, or use another --home"
        )
    first = done[-1] + 1
    if first >= params.generations:  # a rerun of a finished run: nothing to record either
        return None
    optimizer = load_optimizer(home, done[-1])
    earlier_phases = recorded.get("earlier_phases", [])
    if any(saved[name] != settings[name] for name in CHANGEABLE_ON_RESUME):
        earlier_phases.append({"until_generation": first, "command": recorded["command"]})
    if any(saved[name] != settings[name] for name in ("popsize", "episodes_per_candidate")):
        print(
            f"popsize x episodes per candidate {saved['popsize']} x "
            f"{saved['episodes_per_candidate']} -> {params.popsize} x "
            f"{params.episodes_per_candidate} from generation {first} on"
        )
    if saved["latent"] != params.latent:
        print(f"the controllers read z's {params.latent} from generation {first} on")
    if saved["in_dream"] != params.in_dream:
        where = "M's dream" if params.in_dream else "CarRacing"
        print(f"fitness from {where} from generation {first} on")
    if saved["popsize"] != params.popsize:
        optimizer = restart_with_popsize(
            optimizer, params.popsize, derive_seed(params.seed, Stream.OPTIMIZER, first)
        )
        print("CMA-ES restarts from its distribution (mean, sigma, coordinate stds)")
    print(f"resuming after generation {done[-1]} in {layout.generations(home)}")
    if not trained_on(home, done[-1], world_model):
        print(
            f"V and M changed since generation {done[-1]}: the search goes on from its "
            "distribution on the new ones (a warm start)"
        )
    return Start(optimizer, first, earlier_phases)


def candidate_rewards(
    pool, dream, population: np.ndarray, generation: int, params: ControllerParams
) -> tuple[np.ndarray, dict]:
    """Every candidate's total reward on the generation's common tracks (candidates x
    tracks), in CarRacing on the pool or in the `dream`, and the episodes' results by
    (candidate, track)."""
    seeds = [
        derive_seed(params.seed, Stream.TRAINING_TRACKS, generation, j)
        for j in range(params.episodes_per_candidate)
    ]
    tasks = [
        EpisodeTask((candidate, j), population[candidate], track, stall_steps=params.stall_steps)
        for candidate in range(len(population))
        for j, track in enumerate(seeds)
    ]
    if dream is not None:
        results = {result.key: result for result in dream.run(tasks)}
    else:
        results = run_episode_tasks(pool, tasks, params.envs_per_worker, f"generation {generation}")
    rewards = np.array(
        [
            [results[(candidate, j)].total_reward for j in range(len(seeds))]
            for candidate in range(len(population))
        ]
    )
    return rewards, {"track_seeds": seeds, "results": results}


def generation_summary(
    generation: int,
    optimizer,
    rewards: np.ndarray,
    episodes: dict,
    seconds: float,
    driver_cpu_seconds: float,
) -> dict:
    """What summary.json records of a generation after CMA-ES was told its fitness: among it
    `cpu_seconds`, the CPU time of the driver (`driver_cpu_seconds`: CMA-ES, a dream's
    episodes) and of the workers over the generation's episodes, which unlike `seconds` times
    the workers does not grow when other work shares the machine."""
    fitness = rewards.mean(axis=1)
    results = episodes["results"].values()
    return {
        "generation": generation,
        "best_fitness": float(fitness.max()),
        "mean_fitness": float(fitness.mean()),
        "worst_fitness": float(fitness.min()),
        "sigma": float(optimizer.sigma),
        "episodes": len(results),
        "steps": int(sum(result.steps for result in results)),
        "stalled_episodes": int(sum(result.stalled for result in results)),
        "fitness_noise": fitness_noise(rewards),
        "seconds": seconds,
        "cpu_seconds": driver_cpu_seconds + sum(result.cpu_seconds for result in results),
        "episodes_per_second": len(results) / seconds,
        "track_seeds": episodes["track_seeds"],
        "seed_scheme": SEED_SCHEME,
    }


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


def evaluate_mean(pool, mean, generation: int, params: ControllerParams) -> dict:
    """Total rewards of the distribution mean on `eval_episodes` tracks never trained on, on
    how many of them it finished the lap, and the CPU seconds the evaluation took."""
    tasks = [
        EpisodeTask(
            j, mean, derive_seed(params.seed, Stream.TRAINING_EVALUATION_TRACKS, generation, j)
        )
        for j in range(params.eval_episodes)
    ]
    cpu_started = time.process_time()
    results = run_episode_tasks(pool, tasks, params.envs_per_worker, "evaluating the mean")
    episodes = [results[j] for j in range(params.eval_episodes)]
    rewards = [episode.total_reward for episode in episodes]
    laps = sum(episode.lap_finished for episode in episodes)
    return {
        "mean": float(np.mean(rewards)),
        "std": float(np.std(rewards)),
        "rewards": rewards,
        "laps_finished": laps,
        "cpu_seconds": time.process_time() - cpu_started + sum(e.cpu_seconds for e in episodes),
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
