"""The whole recipe in one command, from an empty home to a shipped agent.

    python -m worldmodels.pipeline --preset tiny          # minutes on a laptop
    python -m worldmodels.pipeline --preset budget        # the recipe, ~50 core-hours
    python -m worldmodels.pipeline --preset paper         # the paper's sizes, one iteration

Iteration 1 samples episodes with a random policy, trains V, encodes the episodes, trains M and
runs CMA-ES. Each later iteration (`recipe.iterations`) samples episodes with the best
generation of the one before, retrains V and M warm on every dataset so far, re-encodes them
all and continues the same CMA-ES run warm, with the settings `recipe.changes` names for it.
An iteration ends by rules on the mid-training evaluations (`recipe.patience`, caps, the
core-hour budget; worldmodels/params.py), and the run ends by shipping the generation that
scores best on the validation tracks, tested once on the test tracks, into <home>/shipped/.

Every finished step, iteration end and decision is recorded in <home>/recipe.json as the run
goes. Rerunning the same command after any interruption (kill -9 included) goes on from
there, redoing at most the step in progress. `--set section.key=value` overrides one setting
of the preset (keys as in worldmodels/params.py); a rerun with other settings is refused,
budgets aside (`recipe.core_hours`, `controller.generations`).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import multiprocessing
import os
import resource
import shlex
import sys
import tempfile
import time
from pathlib import Path
from typing import BinaryIO

from worldmodels import __version__, layout
from worldmodels.cli import (
    add_backend_arguments,
    add_compare_with_argument,
    make_parser,
    positive_int,
    stop_like_ctrl_c,
)
from worldmodels.files import exclusive_use
from worldmodels.params import PRESETS, Config, ConfigError, config_from_dict
from worldmodels.recipe_record import RecipeRecord, cma_es_step_name, status
from worldmodels.records import read_reports


def parse_overrides(assignments: list[str]) -> dict:
    """["vae.epochs=3", "env.env=stock"] -> {"vae": {"epochs": 3}, "env": {"env": "stock"}}.

    Values are JSON (3, 0.5, true, {"2": ...}) or, failing that, plain strings.
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


# The stages the recipe seeds with the run's seed, `sampling.seed`.
SEEDED_STAGES = ("vae", "memory", "controller")


def seeded_by_the_run(config: Config) -> Config:
    """`config` with each stage's seed set to the run's, `sampling.seed`: a recipe has one seed
    (each stage derives its own streams from it), so another one set for a stage is an error."""
    seed = config.sampling.seed
    for section in SEEDED_STAGES:
        if getattr(config, section).seed not in (0, seed):
            raise ConfigError(
                f"config key '{section}.seed': the recipe seeds every stage with sampling.seed "
                f"(the run's seed, {seed}); set that instead"
            )
    return config_from_dict({section: {"seed": seed} for section in SEEDED_STAGES}, base=config)


def plateaued(means: list[float], patience: int) -> bool:
    """Whether the last `patience` of an iteration's evaluation means are all at or below the
    best one before them."""
    return len(means) > patience and max(means[-patience:]) <= max(means[:-patience])


def cpu_seconds() -> float:
    """CPU seconds used so far by this process and its descendants: those that ended (a
    stage's rollout workers once its pool closes) and, on Linux, those still running (the
    workers mid-step, so that a heartbeat can count them). Unlike wall time times cores, it
    does not grow when other work shares the machine."""
    own, ended = (
        resource.getrusage(who) for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN)
    )
    return own.ru_utime + own.ru_stime + ended.ru_utime + ended.ru_stime + running_descendants()


def running_descendants(pid: int | str = "self") -> float:
    """CPU seconds of the live descendants of process `pid`, each with the children it has
    reaped, from /proc (0 without one). A child that ends between two reads counts in neither
    or in both, once: it moves from here to the parent's RUSAGE_CHILDREN."""
    total = 0.0
    for children in Path(f"/proc/{pid}/task").glob("*/children"):
        for child in children.read_text().split():
            try:
                stat = Path(f"/proc/{child}/stat").read_text()
            except (FileNotFoundError, ProcessLookupError):  # ended meanwhile
                continue
            # After the command name (in parentheses): utime, stime, cutime, cstime are the
            # 12th to 15th fields, in clock ticks.
            ticks = sum(int(field) for field in stat.rsplit(")", 1)[1].split()[11:15])
            total += ticks / os.sysconf("SC_CLK_TCK") + running_descendants(child)
    return total


def training_progress(run: Path, epochs: int) -> str:
    """How far a V or M training run got, from the last row of its losses.csv: "epoch 2 of 4,
    step 1200", and from the second epoch on "of ~N" steps (every epoch as long as the first;
    "" before its first step)."""
    path = run / layout.LOSSES
    if not path.exists():
        return ""
    # One open file for both reads: a run moved aside by --load-model between two opens
    # would give the last row of one losses.csv and the first epoch of another.
    with open(path, "rb") as losses:
        losses.seek(max(0, os.fstat(losses.fileno()).st_size - 4096))  # the last row: a row a step
        rows = losses.read().splitlines()
        fields = rows[-1].split(b",")[:2] if rows else []
        if len(fields) < 2 or not all(field.isdigit() for field in fields):  # the header alone
            return ""
        step, epoch = fields
        total = f" of ~{first_epoch_steps(losses) * epochs}" if int(epoch) > 1 else ""
    return f"epoch {int(epoch)} of {epochs}, step {int(step)}{total}"


def first_epoch_steps(losses: BinaryIO) -> int:
    """The steps of the first epoch of an open losses.csv whose rows reach the second: the
    step before the first row of epoch 2 (reads the rows up to it, ~100 kB per 1,000 steps)."""
    losses.seek(0)
    for row in losses:
        step, epoch = row.split(b",")[:2]
        if epoch == b"2":
            return int(step) - 1
    raise ValueError(f"{losses.name} has no row of epoch 2")


def agent_home(home: str | None = None) -> Path:
    """An experiments home with a trained agent, for notebooks and quick looks.

    The given (or default) home when it holds VAE and MDN-RNN checkpoints and a controller
    generation; otherwise a tiny one, trained once with `--preset tiny` (a few minutes on two
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
        help="tiny: the recipe's two iterations at tiny sizes; budget: the recipe on a small "
        "machine, three iterations in ~50 core-hours; paper: the paper's sizes, one iteration",
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
    parser.add_argument(
        "--status",
        action="store_true",
        help="print where the run in --home stands (its iterations, generations, latest "
        "evaluation, core-hours) and exit; the run itself is untouched",
    )
    add_compare_with_argument(
        parser,
        "the card says whether the recipe's agent beats each by more than two paired "
        "standard errors on the validation tracks",
    )
    add_backend_arguments(parser)
    args = parser.parse_args(argv)
    if args.status:
        print(status(layout.resolve_home(args.home)))
        return
    try:
        config = config_from_dict(parse_overrides(args.set), base=PRESETS[args.preset])
        config = seeded_by_the_run(config)
        for iteration in range(2, config.recipe.iterations + 1):
            config.for_iteration(iteration)  # a change that breaks a rule fails now, not later
    except ConfigError as error:
        parser.error(str(error))
    every, cap = config.controller.eval_every, config.recipe.iteration_generations
    if not every or cap % every:
        parser.error(
            "the recipe's rules read the mid-training evaluations: controller.eval_every must "
            f"be at least 1 and divide recipe.iteration_generations (got {every} and {cap})"
        )
    others = read_reports(args.compare_with)  # checked now, not after days of training
    home = layout.resolve_home(args.home)
    # A second pipeline on this home would take the first's running step for a killed one's.
    with exclusive_use(home, "a recipe run"):
        try:
            command = " ".join(
                ["python -m worldmodels.pipeline --preset", args.preset]
                + [f"--set {shlex.quote(assignment)}" for assignment in args.set]
            )
            record = RecipeRecord(home, config, args.preset, command)
        except ConfigError as error:
            sys.exit(f"error: {error}")
        config.save(layout.pipeline_config(home))
        stop_like_ctrl_c()
        try:
            Recipe(config, home, record, args, others).run()
        except KeyboardInterrupt:
            sys.exit(
                f"\ninterrupted; rerun the same command to go on from {layout.recipe_record(home)}"
            )


class Recipe:
    """The steps of the recipe in order, each skipped when recipe.json records it finished."""

    def __init__(
        self,
        config: Config,
        home: Path,
        record: RecipeRecord,
        args,
        compare_with: dict[str, dict] | None = None,
    ):
        self.config, self.home, self.record, self.args = config, home, record, args
        self.compare_with = compare_with  # other agents' reports, for the card
        # Where the rollouts of sampling and evaluation run (CMA-ES's: its own params).
        self.workers = {
            "num_process": args.num_process,
            "envs_per_worker": config.controller.envs_per_worker,
            "worker_timeout": config.controller.worker_timeout,
            "backend": args.backend,
            "ray_address": args.ray_address,
        }

    def step(self, name: str, stage, cores: int, missing: str = "", progress=lambda: "") -> None:
        """Runs `stage` (a call of a stage's library function, which returns its summary
        line) unless recipe.json records `name` done and nothing of it is `missing`; then
        records it, with its wall seconds, the cores it kept busy and the CPU seconds it used
        (as redone when it was done before: its episodes went missing). `progress()` says how
        far it got, for `--status`."""
        redo = self.record.done(name)  # its episodes went missing: not the recipe's cost
        if redo and not missing:
            return
        print(f"== {name}{f' (again: {missing})' if missing else ''}", flush=True)
        started, cpu_started = time.monotonic(), cpu_seconds()

        def spent() -> tuple[float, float | None]:
            # Ray's workers run outside this process tree: their time is not measured here.
            cpu = None if self.args.backend == "ray" else cpu_seconds() - cpu_started
            return time.monotonic() - started, cpu

        keep = self.record.redone if redo else self.record.interrupted
        try:
            with self.record.running(name, cores, lambda: spent()[1], progress, redo):
                summary = stage()
        except (KeyboardInterrupt, SystemExit):  # Ctrl-C, or a stage's error: time spent
            keep(name, *spent(), cores)
            raise
        print(summary, flush=True)
        seconds, cpu = spent()
        if redo:
            self.record.redone(name, seconds, cpu, cores)
        else:
            self.record.finish(name, seconds, cores, cpu)

    def run(self) -> None:
        from worldmodels.control.generations import load_summaries

        for iteration in range(1, self.config.recipe.iterations + 1):
            ended = self.record.iteration(iteration)
            if ended is None:
                if iteration > 1 and self.budget_spent(self.config.for_iteration(iteration)):
                    iteration -= 1  # the last iteration ended by its rule as the budget ran out
                    break
                ended = self.train_iteration(iteration)
            if ended["ends_run"]:
                break
        chosen = self.choose_generation(iteration, load_summaries(self.home))
        self.ship(chosen)
        card = json.loads((layout.shipped(self.home) / "evaluation.json").read_text())
        print(
            f"recipe ({self.record.data['preset']}) complete: generation {chosen} shipped, "
            f"{card['mean']:.1f} ± {card['std']:.1f} over {len(card['rewards'])} test episodes, "
            f"{self.record.core_hours():.2f} core-hours; card in {layout.shipped(self.home)}"
        )

    def train_iteration(self, iteration: int) -> dict:
        """Runs iteration `iteration`'s stages and CMA-ES until one of its rules ends it;
        returns the iteration's recorded end."""
        from worldmodels.control.controller_training import train_controller
        from worldmodels.latent_stats import encode_dataset
        from worldmodels.memory.memory_training import train_memory
        from worldmodels.vision.vae_training import train_vae

        config = self.config.for_iteration(iteration)
        vae, memory, controller = config.vae, config.memory, config.controller
        cores = os.cpu_count() or 1
        datasets = self.datasets(iteration)
        prefix = f"iteration {iteration}:"
        memory_step = f"{prefix} train the MDN-RNN on {', '.join(datasets)}"
        encode_steps = [f"{prefix} encode {dataset}" for dataset in datasets]
        uses_memory = controller.controller_inputs == "zh"  # the V-only agent needs no MDN-RNN
        data_steps = [self.vae_step(iteration), *([*encode_steps, memory_step] * uses_memory)]
        if not all(self.record.done(step) for step in data_steps):
            for sampled in range(1, iteration + 1):  # V and M train on every dataset so far
                self.sample(sampled)
        home, warm = self.home, iteration > 1
        self.step(
            self.vae_step(iteration),
            lambda: train_vae(home, datasets, vae, load_model=warm),
            cores,
            progress=lambda: training_progress(layout.vae_training(home), vae.epochs),
        )
        if uses_memory:
            for dataset, step in zip(datasets, encode_steps):  # all again: the VAE changed
                self.step(
                    step,
                    lambda dataset=dataset: encode_dataset(home, dataset, overwrite=warm),
                    cores,
                )
            self.step(
                memory_step,
                lambda: train_memory(home, datasets, memory, load_model=warm),
                cores,
                progress=lambda: training_progress(layout.memory_training(home), memory.epochs),
            )
        first = 0 if iteration == 1 else self.record.iteration(iteration - 1)["last_generation"] + 1
        while True:
            ended = self.iteration_end(config, iteration, first)
            if ended is not None:
                self.record.end_iteration(iteration, **ended)
                print(f"== {prefix} ends at generation {ended['last_generation']}: "
                      f"{ended['reason']}", flush=True)  # fmt: skip
                return ended
            target = self.next_stop(config, first)
            self.step(
                cma_es_step_name(iteration, target - 1),
                lambda target=target: train_controller(
                    home,
                    dataclasses.replace(controller, generations=target),
                    env_params=config.env,
                    num_process=self.args.num_process,
                    backend=self.args.backend,
                    ray_address=self.args.ray_address,
                ),
                self.args.num_process,
                progress=lambda target=target: (
                    f"generations 0-{self.generations_done() - 1} of 0-{target - 1} complete"
                ),
            )

    def sample(self, iteration: int) -> None:
        """The episodes iteration `iteration` adds: a random policy's in the first, the best
        generation of the iteration before in each later one.

        A home restored from a snapshot on another machine has the records but not the
        episodes: they are sampled again from the same seeds (the same code samples the same
        episodes), a later iteration's by its generation with the V and M it drove with, kept
        beside its episodes (`layout.sampling_world_model`)."""
        from worldmodels.control.sampling import sample_episodes
        from worldmodels.data.tf_records import list_episodes
        from worldmodels.seeds import Stream, derive_seed

        config = self.config.for_iteration(iteration)
        sampling = config.sampling
        if iteration == 1:
            dataset, wanted = sampling.policy, sampling.episodes
            policy = f"policy {sampling.policy}"
            arguments = {
                "policy": sampling.policy,
                "seed": sampling.seed,
                "brownian_dt": sampling.brownian_dt,
            }
        else:
            dataset, wanted = layout.agent_dataset(iteration), config.recipe.agent_episodes
            sampler = self.record.iteration(iteration - 1)["sampling_generation"]
            policy = f"generation {sampler}"
            arguments = {
                "policy": "controller",
                "generation": str(sampler),
                "seed": derive_seed(sampling.seed, Stream.ITERATION_DATA, iteration),
            }
        name = f"iteration {iteration}: sample episodes with {policy}"
        present = len(list_episodes(layout.rollouts(self.home, dataset)))
        missing = f"{present} of {wanted} episodes" if present < wanted else ""
        kept = layout.sampling_world_model(self.home, dataset).exists()
        if missing and iteration > 1 and not kept and self.record.done(self.vae_step(iteration)):
            raise SystemExit(
                f"error: {layout.rollouts(self.home, dataset)} has {missing}, and they "
                f"cannot be sampled again: {policy} drove with V and M retrained since. "
                "Restore them from the machine that sampled them"
            )
        self.step(
            name,
            lambda: sample_episodes(
                self.home, dataset=dataset, episodes=wanted, env_params=config.env,
                **arguments, **self.workers,
            ),
            self.args.num_process,
            missing=missing,
            progress=lambda: (
                f"{len(list_episodes(layout.rollouts(self.home, dataset)))} of {wanted} "
                "episodes written"
            ),
        )  # fmt: skip

    def vae_step(self, iteration: int) -> str:
        return f"iteration {iteration}: train the VAE on {', '.join(self.datasets(iteration))}"

    def datasets(self, iteration: int) -> list[str]:
        """The datasets V and M of iteration `iteration` train on, oldest first."""
        return [self.config.sampling.policy] + [
            layout.agent_dataset(k) for k in range(2, iteration + 1)
        ]

    def generations_done(self) -> int:
        """How many generations the CMA-ES run has: one past the last complete one."""
        from worldmodels.control.generations import complete_generations

        done = complete_generations(self.home)
        return done[-1] + 1 if done else 0

    def next_stop(self, config: Config, first: int) -> int:
        """The generation count train_controller runs to next: the next evaluation, within the
        iteration's and the run's caps."""
        count = self.generations_done()
        every = config.controller.eval_every
        stop = (count // every + 1) * every
        caps = [config.controller.generations]
        if config.recipe.iteration_generations:
            caps.append(first + config.recipe.iteration_generations)
        return min(stop, *caps)

    def iteration_end(self, config: Config, iteration: int, first: int) -> dict | None:
        """Why iteration `iteration` (its first generation `first`) ends now, as its record;
        None while it goes on. Decided from the generations' recorded evaluations, so a resumed
        run decides as an uninterrupted one did."""
        from worldmodels.control.generations import best_evaluated, load_summaries

        recipe = config.recipe
        count = self.generations_done()
        summaries = [s for s in load_summaries(self.home) if s["generation"] >= first]
        means = [s["evaluation"]["mean"] for s in summaries if "evaluation" in s]
        ends_run = True
        if means and (spent := self.budget_spent(config)):
            reason = spent
        else:
            ends_run = iteration == recipe.iterations
            if recipe.iteration_generations and count - first >= recipe.iteration_generations:
                reason = f"its cap of {recipe.iteration_generations} generations"
            elif plateaued(means, recipe.patience):
                reason = (
                    f"a plateau: its last {recipe.patience} evaluations "
                    f"{[round(m, 1) for m in means[-recipe.patience :]]} at or below its best "
                    f"{max(means[: -recipe.patience]):.1f}"
                )
            else:
                return None
        return {
            "reason": reason,
            "ends_run": ends_run,
            "first_generation": first,
            "last_generation": count - 1,
            "evaluations": {str(s["generation"]): s["evaluation"]["mean"] for s in summaries
                            if "evaluation" in s},
            "sampling_generation": best_evaluated(summaries),
            "core_hours": self.record.core_hours(),
        }  # fmt: skip

    def budget_spent(self, config: Config) -> str | None:
        """Which of the run's budgets is spent, if one is: its generations or its core-hours."""
        generations, core_hours = config.controller.generations, config.recipe.core_hours
        if self.generations_done() >= generations:
            return f"the run's {generations} generations (controller.generations)"
        if core_hours and self.record.core_hours() >= core_hours:
            return f"the run's budget of {core_hours} core-hours (recipe.core_hours)"
        return None

    def choose_generation(self, iteration: int, summaries: list[dict]) -> int:
        """Runs the last iteration's best evaluated generations on the validation tracks and
        returns the one that scores best there (recorded in recipe.json with the evidence)."""
        from worldmodels.control.evaluation import evaluate_agent
        from worldmodels.control.generations import ship_candidates

        recipe = self.config.recipe
        first = self.record.iteration(iteration)["first_generation"]
        candidates = ship_candidates(
            [s for s in summaries if s["generation"] >= first], recipe.ship_candidates
        )
        scores = {}
        for generation in candidates:
            self.step(
                f"validate generation {generation}",
                lambda generation=generation: evaluate_agent(
                    self.home,
                    str(generation),
                    episodes=recipe.validation_episodes,
                    seed=recipe.validation_seed,
                    env_params=self.config.env,
                    **self.workers,
                ),
                self.args.num_process,
            )
            report = layout.evaluation_file(self.home, generation, seed=recipe.validation_seed)
            scores[str(generation)] = json.loads(report.read_text())["mean"]
        chosen = max(candidates, key=lambda g: (scores[str(g)], g))
        self.record.data["ship"] = {
            "generation": chosen,
            "reason": f"best of generations {candidates} on {recipe.validation_episodes} "
            f"validation tracks (seed {recipe.validation_seed})",
            "validation_means": scores,
        }
        self.record.save()
        return chosen

    def ship(self, generation: int) -> None:
        """Tests `generation` on the test tracks (stock CarRacing-v3) and writes the card."""
        from worldmodels.shipping import ship_agent

        episode_length = self.config.env.episode_length
        self.step(
            f"test generation {generation} and write its card",
            lambda: ship_agent(
                self.home,
                layout.shipped(self.home),
                str(generation),
                episodes=self.config.controller.evaluation_episodes,
                num_process=self.args.num_process,
                episode_length=episode_length,
                gif_steps=min(400, episode_length),
                cores=os.cpu_count() or 1,
                compare_with=self.compare_with,
            ),
            self.args.num_process,
        )


if __name__ == "__main__":
    main()
