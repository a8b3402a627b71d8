"""Episodes inside the world model: the controller drives M instead of CarRacing.

A dream episode starts from z_0 drawn from q(z|x_0) of a real first frame (the latent
statistics of a recorded episode) and then, each step t:

    a_t = C(z_t, h_t)                     the controller, as in a real rollout
    h_{t+1} = LSTM(z_t, a_t, h_t)         M's memory, carried as in a real rollout
    r_t, done_t from M's heads on h_{t+1} (train_memory --reward-done-heads): with an
                                          ensemble of K heads, r_t = their mean - penalty x
                                          their std; done when the (mean) predicted
                                          probability of done_t exceeds one half
    z_{t+1} ~ M's mixture on h_{t+1} at `temperature`: logits / tau, sigma * sqrt(tau)

until done or `episode_length` steps. No frame is rendered or encoded: a step costs one LSTM
step and one mixture sample, for a whole batch of episodes at once in numpy. Each episode's
randomness (its first frame, z_0, every mixture draw) comes from its own generator, seeded by
its task, so an episode's course does not depend on what it is batched with.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from threadpoolctl import threadpool_limits

from worldmodels import layout
from worldmodels.control.controller import ACTION_DIM, ControllerSpec, controller_actions
from worldmodels.control.rollouts import (
    STALLED_STEP_REWARD,
    EpisodeResult,
    EpisodeTask,
    count_stall,
)
from worldmodels.data.tf_records import LATENT_STATS, list_episodes, readable_records
from worldmodels.memory.numpy_memory import mixture_draws, sample_mixture, sigmoid
from worldmodels.world_model import WorldModel


@dataclass(frozen=True)
class FirstFrames:
    """q(z|x_0) of real first frames, one row per recorded episode: mu and logvar [N, 32]."""

    mu: np.ndarray
    logvar: np.ndarray


class DreamEngine:
    """Runs dream episodes of controllers, with `actions` outputs, on one agent's M (which
    needs reward and done heads); `run` takes `EpisodeTask`s, as the real rollout engine does,
    and returns their `EpisodeResult`s (total predicted reward, steps)."""

    def __init__(
        self,
        world_model: WorldModel,
        first_frames: FirstFrames,
        temperature: float,
        episode_length: int,
        actions: int = ACTION_DIM,
        disagreement_penalty: float = 0.0,
    ):
        memory = world_model.numpy_memory
        if memory is None or not memory.reward_done_heads:
            raise ValueError(
                "a dream needs an MDN-RNN with reward and done heads: train_memory "
                "--reward-done-heads (with --load-model to start from an existing one)"
            )
        if temperature <= 0:
            raise ValueError(f"the temperature must be positive, got {temperature}")
        if disagreement_penalty and memory.reward_done_ensemble == 1:
            raise ValueError(
                "a penalty on the heads' disagreement needs an MDN-RNN with an ensemble of "
                "them: train_memory --reward-done-heads --reward-done-ensemble K (K > 1)"
            )
        if disagreement_penalty < 0:
            raise ValueError(f"the penalty must be 0 or more, got {disagreement_penalty}")
        self.disagreement_penalty = disagreement_penalty
        self.world_model = world_model
        self.memory = memory
        self.first_frames = first_frames
        self.temperature = temperature
        self.episode_length = episode_length
        self.actions = actions

    def run(self, tasks: Sequence[EpisodeTask], trajectories: dict | None = None) -> list:
        """Runs `tasks` together; with a `trajectories` dict, also fills it with each task's
        key -> {"z": [T + 1, D], "action": [T, A], "reward": [T]}."""
        # On one BLAS thread, as in rollout workers (`use_one_thread`): the step's products are
        # small, and OpenBLAS's threads busy-wait between them. Measured with 128 episodes of
        # 200 steps while the machine's 2 cores ran other work: 3.19 CPU-seconds with numpy's
        # default threads, 0.72 with one.
        with threadpool_limits(limits=1, user_api="blas"):
            return self._run(tasks, trajectories)

    def _run(self, tasks: Sequence[EpisodeTask], trajectories: dict | None) -> list:
        count = len(tasks)
        generators = [np.random.default_rng(task.seed) for task in tasks]
        starts = [generator.integers(len(self.first_frames.mu)) for generator in generators]
        mu, logvar = self.first_frames.mu[starts], self.first_frames.logvar[starts]
        noise = np.stack([generator.standard_normal(mu.shape[1]) for generator in generators])
        z = (mu + np.exp(logvar / 2) * noise).astype(np.float32)
        parameters = np.stack([task.parameters for task in tasks])
        state = self.memory.initial_state(count)
        totals, steps = np.zeros(count), np.zeros(count, np.int64)
        running = np.ones(count, bool)
        # As in real rollouts (EpisodeTask.stall_steps), on the predicted rewards.
        stall_limits = np.array([task.stall_steps for task in tasks])
        without_new_tile = np.zeros(count, np.int64)
        stalled = np.zeros(count, bool)
        history = [{"z": [z[i].copy()], "action": [], "reward": []} for i in range(count)]
        for _ in range(self.episode_length):
            active = np.flatnonzero(running)
            if not len(active):
                break
            actions = controller_actions(
                parameters[active], z[active], state["features"][active], self.actions
            )
            stepped = self.memory.step(
                z[active], actions, {name: value[active] for name, value in state.items()}
            )
            for name, value in stepped.items():
                state[name][active] = value
            logit_pi, mixture_mu, log_sigma = self.memory.mixture(stepped["features"])
            reward, done = dream_reward_done(
                *self.memory.reward_done(stepped["features"]), self.disagreement_penalty
            )
            draws = [mixture_draws(generators[episode], *logit_pi.shape[1:]) for episode in active]
            z[active] = sample_mixture(
                logit_pi,
                mixture_mu,
                log_sigma,
                self.temperature,
                np.stack([uniform for uniform, _ in draws]),
                np.stack([noise for _, noise in draws]),
            )
            if trajectories is not None:
                for row, episode in enumerate(active):
                    history[episode]["action"].append(actions[row])
                    history[episode]["reward"].append(reward[row])
                    history[episode]["z"].append(z[episode].copy())
            totals[active] += reward
            steps[active] += 1
            without_new_tile[active], stalls = count_stall(
                without_new_tile[active], reward, stall_limits[active]
            )
            stall = stalls & ~done
            stalled[active[stall]] = True
            totals[active[stall]] += STALLED_STEP_REWARD * (
                self.episode_length - steps[active[stall]]
            )
            running[active[done | stall]] = False
        if trajectories is not None:
            for task, episode in zip(tasks, history):
                trajectories[task.key] = {name: np.stack(v) for name, v in episode.items()}
        return [
            EpisodeResult(task.key, float(total), int(length), stalled=bool(stop))
            for task, total, length, stop in zip(tasks, totals, steps, stalled)
        ]


def dream_reward_done(
    reward: np.ndarray, done_logit: np.ndarray, penalty: float
) -> tuple[np.ndarray, np.ndarray]:
    """A dream step's reward and done from M's heads (each [B, K]): the heads' mean reward
    minus `penalty` times their standard deviation, and done where their mean probability of
    done exceeds one half (with one head: its reward, and its logit above 0)."""
    done = sigmoid(done_logit).mean(axis=1) > 0.5
    return reward.mean(axis=1) - penalty * reward.std(axis=1), done


def home_dream(
    home,
    spec: ControllerSpec,
    temperature: float,
    episode_length: int,
    disagreement_penalty: float = 0.0,
) -> DreamEngine:
    """The DreamEngine of `home`'s V and M, starting from the first frames of the episodes M
    was trained on (their latent statistics). Raises ValueError or FileNotFoundError saying
    what is missing."""
    if not spec.uses_memory:
        raise ValueError("a V-only controller has no M to dream in")
    datasets = layout.trained_datasets(layout.memory_training(home))
    folders = [layout.latent_stats(home, dataset) for dataset in datasets]
    paths = [path for folder in folders for path in list_episodes(folder)]
    first = [stats for _, stats in readable_records(paths, LATENT_STATS, "skip")]
    if not first:
        raise FileNotFoundError(
            f"no latent statistics in {', '.join(map(str, folders))} to start dreams from"
        )
    first_frames = FirstFrames(
        np.stack([stats["mu"][0] for stats in first]),
        np.stack([stats["logvar"][0] for stats in first]),
    )
    return DreamEngine(
        WorldModel(home, with_memory=spec.uses_memory),
        first_frames,
        temperature,
        episode_length,
        spec.actions,
        disagreement_penalty,
    )
