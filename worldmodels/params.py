"""Every hyperparameter of the pipeline (where its files live: worldmodels/layout.py).

Defaults are the paper's (Ha & Schmidhuber, 2018) unless a comment says they follow the
TF2 write-up instead. `Config` groups one dataclass per part of the agent; `PRESETS` holds the
full-size `paper` config, the `budget` run of the project's first agent and a `tiny` one for
tests and quick tries. Configs are strict: unknown keys, values of the wrong type and values
outside a setting's choices or range are errors, never silently ignored, and every key
reaches the stage that uses it (the pipeline passes each one on as its stage's flag).
"""

from __future__ import annotations

import dataclasses
import json
import os
import typing
from dataclasses import dataclass, field


class ConfigError(ValueError):
    """A config has an unknown key, a value of the wrong type, or one its setting refuses."""


RANDOM_POLICIES = ("random", "brownian", "agent-random")
POLICIES = (*RANDOM_POLICIES, "controller")  # stage 1's; "controller": a trained agent's
# The z a controller reads each step: "sample", a draw from q(z|x) (the paper's); "mode", its
# most likely value (mu; a discrete VAE's likeliest classes), without the draw's noise.
LATENT_READINGS = ("sample", "mode")
LATENTS = ("continuous", "discrete")  # the VAE's z: the paper's Gaussians, or categoricals
MEMORIES = ("lstm", "attention")  # M: the paper's LSTM, or the LSTM with attention over its past
CONTROLLER_INPUTS = ("zh", "z")  # z and M's features (the paper's), or z alone (V only)
ACTION_MODES = (3, 2)  # the controller's outputs: (steer, gas, brake), or (steer, throttle)


# What a resumed training run may do with a setting (`setting(resume=...)`).
KEPT = "kept"  # part of what the run is: recorded in run.json's settings, a change refused
NEW_PHASE = "new phase"  # recorded too, but a resume may change it, starting a new phase
FREE = "free"  # the run's length or machinery: not recorded, a rerun may change it


def setting(
    default,
    doc: str,
    *,
    choices: tuple | None = None,
    check: str | None = None,
    aliases: tuple[str, ...] = (),
    resume: str = KEPT,
):
    """A config field and its flag's documentation, in one place: `doc` is the flag's --help
    (`worldmodels.cli.add_settings` makes the flag `--field-name`), `choices` the values it
    takes, `check` its range ("positive", "non_negative" or "fraction", [0, 1)), `aliases`
    older spellings of the flag that still work, `resume` what a resumed run may do with it
    (KEPT, NEW_PHASE or FREE; `run_settings`)."""
    metadata = {
        "doc": doc, "choices": choices, "check": check, "aliases": aliases, "resume": resume
    }  # fmt: skip
    return field(default=default, metadata=metadata)


def validation_share_setting():
    """V's and M's held-out share (not in the paper, which trained on every episode)."""
    return setting(
        0.05,
        "share of the episodes held out, whole, to measure the loss on; chosen by --seed when "
        "the run starts and kept when it resumes (0: none)",
        check="fraction",
    )


# `setting(check=...)`: the range a number must lie in, as (test, what the test asks for).
CHECKS = {
    "positive": (lambda value: value >= 1, "at least 1"),
    "non_negative": (lambda value: value >= 0, "at least 0"),
    "fraction": (lambda value: 0 <= value < 1, "a fraction in [0, 1)"),
}


def check_settings(params, prefix: str) -> None:
    """Raises ConfigError naming the key (`prefix` + field) for a field of `params` outside its
    setting's choices or range: what its flag enforces, enforced for configs too."""
    for f in dataclasses.fields(params):
        if "doc" not in f.metadata:  # not declared with `setting`
            continue
        value, name = getattr(params, f.name), f"{prefix}{f.name}"
        choices, check = f.metadata["choices"], f.metadata["check"]
        if choices is not None and value not in choices:
            raise ConfigError(f"config key {name!r} expects one of {choices}, got {value!r}")
        if check is not None and not CHECKS[check][0](value):
            raise ConfigError(f"config key {name!r} must be {CHECKS[check][1]}, got {value!r}")


def run_settings(params) -> dict:
    """The settings of a stage's params that its training run records in run.json and checks
    when it resumes: every field but the FREE ones."""
    return {
        f.name: getattr(params, f.name)
        for f in dataclasses.fields(params)
        if f.metadata["resume"] != FREE
    }


def new_phase_settings(params_type: type) -> tuple[str, ...]:
    """The fields of `params_type` a resumed run may change, starting a new phase."""
    return tuple(
        f.name for f in dataclasses.fields(params_type) if f.metadata["resume"] == NEW_PHASE
    )


@dataclass(frozen=True)
class EnvParams:
    """The CarRacing environment (its observation preprocessing is fixed: car_racing.py)."""

    env: str = setting(
        "fast",
        "fast: FastCarRacing (identical observations, ~3x faster); stock: CarRacing-v3",
        choices=("fast", "stock"),
    )
    episode_length: int = setting(
        1000,  # the paper's horizon
        "steps before an episode is truncated",
        check="positive",
        aliases=("--episode_length",),
    )


@dataclass(frozen=True)
class SamplingParams:
    """Stage 1: episodes from a random policy."""

    # No random policy reaches far along the track (scripts/measure_policy_coverage.py, README:
    # 12 episodes of 1000 steps each, tiles visited: random 6.8%, brownian 3.3%, agent-random
    # 2.0%); white noise reaches farthest, so it is the default. Iteration two is what
    # brings the rest of the track into the data. Reach is not all: the budget preset samples
    # agent-random, whose faster car gave its VAE three times the active latent dimensions.
    policy: str = setting(
        "random",
        "random: uniform white noise each step; brownian: a random walk in action space; "
        "agent-random: the paper's random agent, a random controller on random V and M, all "
        "three redrawn every episode",
        choices=RANDOM_POLICIES,
    )
    episodes: int = setting(
        10_000,  # the paper's random rollouts for the first iteration
        "sample episode indices [start-episode, episodes)",
        check="positive",
    )
    brownian_dt: float = setting(1 / 50, "time step of the brownian policy's random walk")
    seed: int = setting(
        0,
        "base seed; episode i's env seed is derived from (seed, i)",
        check="non_negative",
    )


# The discrete VAE's annealing schedules, each a start, an end and a half-life (VAEParams).
VAE_SCHEDULES = tuple(
    f"{name}_{part}"
    for name in ("gumbel_temperature", "kl_weight")
    for part in ("start", "end", "half_life")
)


@dataclass(frozen=True)
class VAEParams:
    """Stage 2: the convolutional VAE."""

    latent: str = setting(
        "continuous",
        "continuous: the paper's 32 Gaussians; discrete: 32 categorical variables of 32 "
        "classes, Gumbel-softmax relaxed in training, a hard one-hot sample in agents",
        choices=LATENTS,
    )
    # The discrete VAE's Gumbel-softmax temperature and KL weight, each annealed exponentially
    # from start to end with a half-life in epochs (the discrete World Models source).
    gumbel_temperature_start: float = setting(
        5.0, "the discrete VAE's Gumbel-softmax temperature at epoch 0"
    )
    gumbel_temperature_end: float = setting(
        0.1, "the discrete VAE's Gumbel-softmax temperature it anneals exponentially towards"
    )
    gumbel_temperature_half_life: float = setting(
        10.0, "epochs in which the Gumbel-softmax temperature halves its distance to its end"
    )
    kl_weight_start: float = setting(
        2.0, "the discrete VAE's weight of KL(q || uniform) at epoch 0"
    )
    kl_weight_end: float = setting(
        0.01, "the discrete VAE's weight of KL(q || uniform) it anneals exponentially towards"
    )
    kl_weight_half_life: float = setting(
        10.0, "epochs in which the KL weight halves its distance to its end value"
    )
    kl_tolerance: float = setting(
        0.5, "free bits: KL is floored at kl_tolerance * 32 nats per frame"
    )
    learning_rate: float = setting(1e-4, "Adam learning rate")
    batch_size: int = setting(
        256,  # the write-up's
        "frames per step (paper: 32 / 100)",
        check="positive",
        aliases=("--batch_size",),
    )
    epochs: int = setting(
        10,
        "total epochs of the run; raise it and rerun to train longer",
        check="positive",
        resume=FREE,
    )
    validation_share: float = validation_share_setting()
    seed: int = setting(
        0,
        "seeds the initial weights, the held-out episodes and the order of the frames",
        check="non_negative",
    )


@dataclass(frozen=True)
class MemoryParams:
    """Stage 4: the MDN-RNN."""

    memory: str = setting(
        "lstm",
        "lstm: the paper's MDN-RNN; attention: the LSTM followed by causal soft attention over "
        "its last --attention-window outputs, whose context the head and the controller read "
        "beside h",
        choices=MEMORIES,
    )
    attention_window: int = setting(
        32,  # 0.64 s of driving
        "with --memory attention: the outputs each step attends to, itself included",
        check="positive",
    )
    # Not in the paper's CarRacing model.
    reward_done_heads: bool = setting(
        False,
        "also predict each step's reward (squared error) and done flag (cross-entropy) from "
        "the features, for training the controller in the dream; the loss is then the mixture "
        "NLL plus both",
    )
    # Not in the paper: a remedy against a dream controller steering into M's optimism
    # (docs/dream.md measures it).
    reward_overprediction_weight: float = setting(
        1.0,
        "with --reward-done-heads: weight of the squared reward error where M predicts more "
        "reward than the step got (1: the plain squared error; above 1, M errs low)",
    )
    # Not in the paper: a remedy against a dream controller steering where M never saw the
    # driving (docs/dream.md measures it; train_controller --dream-disagreement-penalty).
    reward_done_ensemble: int = setting(
        1,
        "with --reward-done-heads: heads predicting reward and done; 1, one linear layer; K > 1, "
        "K small networks (a hidden layer of 64 tanh units) with their own initial weights, "
        "which disagree where M has not seen the driving",
        check="positive",
    )
    # Not in the paper: heads for an M a controller already reads, so that its CMA-ES can go on
    # in the dream of that M (docs/dream.md, the dream as a warm start).
    train_heads_only: bool = setting(
        False,
        "with --reward-done-heads and --load-model: train the reward and done heads alone; the "
        "LSTM and the mixture keep the loaded weights, so the features (h) a controller reads "
        "stay what they were",
    )
    lstm_units: int = setting(256, "LSTM width (h)", check="positive")
    num_mixtures: int = setting(
        5, "Gaussians in the mixture of each latent dimension", check="positive"
    )
    learning_rate: float = setting(1e-3, "initial Adam learning rate")
    final_learning_rate: float = setting(
        1e-5, "learning rate at the last step (polynomial decay over the run)"
    )
    gradient_clip: float = setting(1.0, "each gradient element is clipped to [-clip, clip]")
    batch_size: int = setting(100, "episodes per step", check="positive", aliases=("--batch_size",))
    # The paper trained 4000 steps.
    epochs: int = setting(
        40, "total epochs of the run (the write-up: 20-80)", check="positive", resume=FREE
    )
    validation_share: float = validation_share_setting()
    seed: int = setting(
        0,
        "seeds the initial weights, the held-out episodes, the episode order and the z draws",
        check="non_negative",
    )


@dataclass(frozen=True)
class ControllerParams:
    """Stage 5: the linear controller trained with CMA-ES."""

    generations: int = setting(
        500,
        "total generations of the run; raise it and rerun to go on",
        check="positive",
        resume=FREE,
    )
    popsize: int = setting(64, "controllers per generation", check="positive", resume=NEW_PHASE)
    seed: int = setting(0, "seeds the tracks and CMA-ES's samples", check="non_negative")
    episodes_per_candidate: int = setting(
        16,
        "episodes averaged into each controller's fitness; may change on resume",
        check="positive",
        resume=NEW_PHASE,
    )
    sigma0: float = setting(0.1, "initial CMA-ES step size around x0 = 0 (the write-up used 0.5)")
    cma_diagonal: bool = setting(
        False,
        "diagonal covariance (pycma's CMA_diagonal): ~100x faster adaptation at 867 parameters",
    )
    eval_every: int = setting(
        10,
        "evaluate the distribution mean on fresh tracks every K generations (0: never)",
        check="non_negative",
        resume=FREE,
    )
    eval_episodes: int = setting(16, "episodes of each evaluation", check="positive", resume=FREE)
    # Larger batches make the encoder cheaper per frame: 2.57-2.78 ms CPU per step at 16 vs
    # 2.99-3.20 at 4 over three runs of scripts/benchmark_rollouts.py.
    envs_per_worker: int = setting(
        16,
        "agent policies: environments each worker steps in lock-step, batching V and M",
        check="positive",
        resume=FREE,
    )
    worker_timeout: float = setting(
        600.0,
        "seconds a worker may spend on one job of episodes before it is killed and the job "
        "given to another",
        resume=FREE,
    )
    keep_optimizer_states: int = setting(
        5,
        "latest generations that keep optimizer.pkl, ~12 MB each (0: all)",
        check="non_negative",
        resume=FREE,
    )
    evaluation_episodes: int = setting(
        100,
        "episodes of the paper's evaluation: the mean over 100 random tracks",
        resume=FREE,
    )
    controller_inputs: str = setting(
        "zh",
        "zh: z and the MDN-RNN's features (the paper's agent); z: z alone, the V-only agent "
        "(no MDN-RNN needed; the only choice on a discrete VAE)",
        choices=CONTROLLER_INPUTS,
    )
    # 2 is the discrete World Models source's.
    actions: int = setting(
        3,
        "controller outputs: 3, (steer, gas, brake) as the paper; 2, (steer, throttle) with "
        "throttle > 0 gas and < 0 brake. The environment always gets all three",
        choices=ACTION_MODES,
    )
    # Not in the paper.
    stall_steps: int = setting(
        0,
        "end a training episode once it has gained no new track tile for this many steps, "
        "counting -0.1 for every step left, what a stalled car collects (0: never). "
        "Evaluations always run whole episodes",
        check="non_negative",
    )
    # Our first agent's draw added pre-tanh noise of sd 2.4-2.8 to gas and brake; its run,
    # continued reading mu, validated 20 points higher after eleven generations (docs/history.md).
    latent: str = setting(
        "sample",
        "the z the controller reads each step: sample, a draw from q(z|x) (the paper's); mode, "
        "its most likely value (mu), without the draw's noise. Recorded with each generation, "
        "read back by evaluate, render and sample_policy; may change on resume",
        choices=LATENT_READINGS,
        resume=NEW_PHASE,
    )
    # Not the paper's way for CarRacing (it dreamed only in VizDoom).
    in_dream: bool = setting(
        False,
        "fitness from dream episodes in M (needs train_memory --reward-done-heads), all run in "
        "this process; mid-training evaluations still drive CarRacing. May change on resume: "
        "a run dreamed first goes on in CarRacing from its distribution (a dream warm start)",
        resume=NEW_PHASE,
    )
    # The paper's knob against a controller exploiting M's mistakes (VizDoom: 1.15).
    dream_temperature: float = setting(
        1.0,
        "with --in-dream: temperature of M's mixture (logits / tau, sigma * sqrt(tau))",
        resume=NEW_PHASE,
    )
    # Not in the paper: a remedy against M drifting from what it saw (docs/dream.md).
    dream_horizon: int = setting(
        0,
        "with --in-dream: steps of each dream episode (0: --episode-length); a shorter dream "
        "leaves M less room to drift from the driving it was trained on",
        check="non_negative",
        resume=NEW_PHASE,
    )
    # Not in the paper: the ensemble's disagreement as a cost (MOPO, Yu et al., 2020, penalises
    # a model-based return by the model ensemble's uncertainty the same way).
    dream_disagreement_penalty: float = setting(
        0.0,
        "with --in-dream on M with an ensemble of heads (train_memory --reward-done-ensemble): "
        "each dream step's reward is the heads' mean minus this times their standard deviation "
        "(0: the mean)",
        resume=NEW_PHASE,
    )


# Sections a recipe's later iteration may change (`RecipeParams.changes`): how the agent
# learns, not what the run is (its environment, its first data, its own rules).
CHANGEABLE_SECTIONS = ("vae", "memory", "controller")


@dataclass(frozen=True)
class RecipeParams:
    """The recipe: iterations of the five stages, each decided by rules on validation tracks.

    Iteration 1 is stage 1 with `sampling.policy`, then V, M and CMA-ES. Each later iteration
    samples `agent_episodes` episodes with the best generation of the one before (dataset
    `controller-K`), retrains V and M warm on every dataset so far, re-encodes them all and
    continues the same CMA-ES run warm. The run then ships the generation of its last
    iteration that scores best on the validation tracks, tested once on the test tracks.
    """

    iterations: int = 1  # the paper trained once; its text notes iterating for harder tasks
    agent_episodes: int = 500  # sampled by the agent at the start of each later iteration
    # An iteration ends when the last `patience` evaluations of the mean (controller.eval_every
    # apart, on tracks of their own stream) are all at or below the best before them in the
    # iteration. At 3 (15 generations of the budget preset) the rule, replayed on the first
    # agent's recorded evaluations, ends its first iteration at generation 89 and its second at
    # 204, sampling with generations 74 and 189: where that run was steered by hand (89/74,
    # 201/189; docs/history.md).
    patience: int = 3
    iteration_generations: int = 0  # an iteration's generation cap (0: none)
    core_hours: float = 0.0  # the run's budget, every stage counted; reached, it ships (0: none)
    # The ship decision: the `ship_candidates` generations of the last iteration whose
    # mid-training evaluations scored best are each run on `validation_episodes` validation
    # tracks (evaluate --seed validation_seed); the best is tested on the paper's 100
    # (controller.evaluation_episodes, seed 0, stock CarRacing-v3) and written with its card to
    # <home>/shipped/. Seeds 1 and 0 are the tracks the first shipped agent was validated and
    # tested on, so the two compare pair by pair.
    ship_candidates: int = 3
    validation_episodes: int = 100
    validation_seed: int = 1
    # Settings that change from an iteration on, {"K": {"section": {"key": value}}}; each holds
    # for iteration K and after (sections: CHANGEABLE_SECTIONS).
    changes: dict = field(default_factory=dict)

    def __post_init__(self):
        for name in ("iterations", "ship_candidates", "validation_episodes", "patience"):
            if getattr(self, name) < 1:
                raise ConfigError(f"config key 'recipe.{name}' must be at least 1")
        for iteration, sections in self.changes.items():
            if not (iteration.isdigit() and 2 <= int(iteration) <= self.iterations):
                expected = (
                    f"expected '2' to '{self.iterations}'"
                    if self.iterations > 1
                    else "a run of one iteration has none (set recipe.changes={})"
                )
                raise ConfigError(
                    f"config key 'recipe.changes' names iteration {iteration!r}; {expected} "
                    "(iteration 1 is the preset itself)"
                )
            if not isinstance(sections, dict) or set(sections) - set(CHANGEABLE_SECTIONS):
                raise ConfigError(
                    f"config key 'recipe.changes.{iteration}' may change only the sections "
                    f"{CHANGEABLE_SECTIONS}, got {sections!r}"
                )


@dataclass(frozen=True)
class Config:
    """The whole pipeline's hyperparameters."""

    env: EnvParams = field(default_factory=EnvParams)
    sampling: SamplingParams = field(default_factory=SamplingParams)
    vae: VAEParams = field(default_factory=VAEParams)
    memory: MemoryParams = field(default_factory=MemoryParams)
    controller: ControllerParams = field(default_factory=ControllerParams)
    recipe: RecipeParams = field(default_factory=RecipeParams)

    def __post_init__(self):
        for section in dataclasses.fields(self):
            check_settings(getattr(self, section.name), prefix=f"{section.name}.")
        if self.controller.latent == "mode" and self.controller.in_dream:
            raise ConfigError(
                "controller.latent=mode reads the mode of q(z|x) of real frames; a dream's z "
                "are the MDN-RNN's samples: use controller.latent=sample with in_dream"
            )
        if self.memory.train_heads_only:
            raise ConfigError(
                "memory.train_heads_only trains heads on a trained M (train_memory "
                "--train-heads-only --load-model); a recipe trains its M whole"
            )
        if self.vae.latent == "discrete" and self.controller.controller_inputs == "zh":
            raise ConfigError(
                "vae.latent=discrete needs controller.controller_inputs=z: this project has no "
                "MDN-RNN on discrete latents"
            )

        for iteration, sections in self.recipe.changes.items():
            for section, values in sections.items():  # unknown keys and wrong types are errors
                if isinstance(values, dict) and "seed" in values:
                    raise ConfigError(
                        f"config key 'recipe.changes.{iteration}.{section}.seed': a run keeps "
                        "its seeds across iterations"
                    )
                prefix = f"recipe.changes.{iteration}.{section}."
                check_settings(_replace_strict(getattr(self, section), values, prefix), prefix)

    def for_iteration(self, iteration: int) -> Config:
        """The config iteration `iteration` (from 1) trains with: `recipe.changes` of every
        iteration up to it applied in order."""
        config = self
        for changed in range(2, iteration + 1):
            config = config_from_dict(self.recipe.changes.get(str(changed), {}), base=config)
        return config

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def save(self, path: str | os.PathLike) -> None:
        """Writes the config as JSON, atomically."""
        from worldmodels.files import atomic_write_text

        atomic_write_text(path, json.dumps(self.to_dict(), indent=2, sort_keys=True) + "\n")


def config_from_dict(values: dict, base: Config | None = None) -> Config:
    """`base` (default: the paper config) with `values` applied; nested dicts per section.

    Raises ConfigError naming the key for unknown keys and wrongly typed values.
    """
    return _replace_strict(base or Config(), values, prefix="")


def _replace_strict(obj, values: dict, prefix: str):
    if not isinstance(values, dict):
        raise ConfigError(f"{prefix.rstrip('.') or 'config'}: expected a mapping, got {values!r}")
    hints = typing.get_type_hints(type(obj))
    names = [f.name for f in dataclasses.fields(obj)]
    changes = {}
    for key, value in values.items():
        name = f"{prefix}{key}"
        if key not in names:
            raise ConfigError(f"unknown config key {name!r}; expected one of {names}")
        current = getattr(obj, key)
        if dataclasses.is_dataclass(current):
            changes[key] = _replace_strict(current, value, prefix=f"{name}.")
        else:
            changes[key] = _checked_value(name, hints[key], value)
    return dataclasses.replace(obj, **changes)


def _checked_value(name: str, expected: type, value):
    # bool is a subclass of int in Python, so it must be rejected explicitly for numbers.
    if expected is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, expected) and (expected is bool or not isinstance(value, bool)):
        return value
    raise ConfigError(f"config key {name!r} expects {expected.__name__}, got {value!r}")


PRESETS: dict[str, Config] = {
    "paper": Config(),
    # The first agent's run on a 2-core machine, ~24 CPU-hours in all, sized from costs measured
    # on that machine (README): a random-policy step ~2.5 ms CPU; a VAE training frame ~2.4 ms
    # CPU; an MDN-RNN step at batch 100 over 999 steps ~3.3 s CPU; a full-agent step in a real
    # generation with both cores busy 4.3-4.8 ms CPU.
    "budget": config_from_dict(
        {
            # 500 random episodes: 0.35 CPU-h, the data the probe's agent (319 after 15 small
            # generations) had 2.5x over; coverage is what limits random data, not its amount.
            # From the official random agent, not white noise: measured on two runs of this
            # preset (docs/history.md), white-noise data left the VAE 7 of 32 active latent
            # dimensions and agent-random data 22; the mean on 16 unseen tracks at generation
            # 14: 46 ± 34 (white noise, a car that crawls) against 180 ± 67 (24: 469 ± 130).
            "sampling": {"episodes": 500, "policy": "agent-random"},
            # 4 epochs of 500k frames: 2M frames, 1.4 CPU-h (the paper: 10 of 10M).
            "vae": {"epochs": 4},
            # 100 epochs of 5 steps: 500 steps at batch 100, 0.5 CPU-h (the paper: 4000 steps);
            # M adds little on CarRacing (860 vs 870 with an untrained M in a PyTorch port).
            "memory": {"epochs": 100},
            # The rest, ~21 CPU-h, goes to CMA-ES: 16 x 8 episodes = 128k steps = 0.16 CPU-h a
            # generation, so 120 generations (15,360 episodes: what the official run spent in
            # 15 of its generations; its mean scored 823 after 25). Diagonal CMA: at 867 parameters
            # full covariance adapts with c_mu ~ 4e-5, too slowly to matter in 120 generations.
            # Measured (docs/history.md): the mean plateaus at ~700 on unseen tracks from about
            # generation 70 (generation 74: 698 ± 158 on 100); iteration two and 55 more
            # generations took it to 770 ± 143 (generation 144, 100 tracks): hence iterations.
            "controller": {
                "popsize": 16,
                "episodes_per_candidate": 8,
                "cma_diagonal": True,
                "eval_every": 5,
                # The whole recipe's cap; iterations end by the rules below before it.
                "generations": 400,
                # The controller reads mu from generation 0. Measured by
                # scripts/ab_controller_levers.py on the first iteration of the recipe's own
                # run (same V, M, seeds and tracks; docs/recipe.md): the mean on the same 16
                # unseen tracks at generation 4: 341 ± 115 against 113 ± 105 reading a draw
                # of z; at generation 9: 662 ± 145 against 294 ± 108 (the draw's run first
                # reached 656 at generation 39). The first agent, switched late, gained 20.4.
                "latent": "mode",
            },
            # Three iterations, as the first agent's path (docs/history.md): its second
            # iteration took the mean on 100 unseen tracks from 698 to 770 (generations 74 and
            # 144), its third to 813.6 (229).
            "recipe": {
                "iterations": 3,
                "agent_episodes": 500,
                "iteration_generations": 120,
                # The whole run's budget: the first agent's card counts 44 core-hours for its
                # 250 generations, evaluations during training left out (this counts them).
                "core_hours": 50.0,
            },
        }
    ),
    "tiny": config_from_dict(
        {
            "env": {"episode_length": 50},
            "sampling": {"episodes": 4},
            "vae": {"batch_size": 32, "epochs": 1},
            "memory": {"batch_size": 2, "epochs": 1},
            "controller": {
                "popsize": 4,
                "episodes_per_candidate": 1,
                "eval_every": 1,
                "eval_episodes": 2,
                "envs_per_worker": 2,
                "evaluation_episodes": 4,
                "generations": 4,
            },
            "recipe": {
                "iterations": 2,
                "agent_episodes": 2,
                "iteration_generations": 2,
                "ship_candidates": 2,
                "validation_episodes": 2,
                "changes": {"2": {"controller": {"latent": "mode", "episodes_per_candidate": 2}}},
            },
        }
    ),
}
