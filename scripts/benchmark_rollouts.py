"""Full-agent environment steps per second on one core, three ways, side by side in one run.

    python scripts/benchmark_rollouts.py --steps 300 --envs 8

(a) this project's engine: FastCarRacing, several envs in lock-step, one batched encoder call
    and one numpy LSTM step per step, V and M built once;
(b) the write-up's approach: stock CarRacing-v3, one episode at a time, batch-1 eager model
    calls, V and M rebuilt and reloaded for every episode, the MDN sampled every step;
(c) bare FastCarRacing stepped with random actions, no agent: the floor for (a).
TensorFlow runs on one thread, as in each rollout worker. V and M have random weights (the
cost is the same as trained ones), restored from a checkpoint in (b) as the write-up did.
"""

import argparse
import tempfile
import time

import tensorflow as tf

tf.config.threading.set_intra_op_parallelism_threads(1)
tf.config.threading.set_inter_op_parallelism_threads(1)

import gymnasium  # noqa: E402
import numpy as np  # noqa: E402

from worldmodels.control.agent import AgentModels  # noqa: E402
from worldmodels.control.controller import PARAMETER_COUNT, controller_actions  # noqa: E402
from worldmodels.control.rollouts import EpisodeTask, RolloutEngine  # noqa: E402
from worldmodels.data.car_racing import FAST_ENV_ID, make_env, preprocess_frame  # noqa: E402
from worldmodels.memory.memory import MDNRNN, sample_next_latent  # noqa: E402
from worldmodels.params import EnvParams  # noqa: E402
from worldmodels.vision.vae import VAE  # noqa: E402


def batched_engine(episodes: int, envs: int, steps: int) -> float:
    """(a): steps per second of the lock-step engine."""
    engine = RolloutEngine(
        AgentModels(None, seed=0),
        [make_env(EnvParams(env="fast", episode_length=steps)) for _ in range(envs)],
    )
    rng = np.random.default_rng(0)
    tasks = [
        EpisodeTask(i, 0.1 * rng.standard_normal(PARAMETER_COUNT), seed=i) for i in range(episodes)
    ]
    engine.run(tasks[:envs])  # trace the encoder once, outside the timing
    start = time.perf_counter()
    results = engine.run(tasks)
    return sum(r.steps for r in results) / (time.perf_counter() - start)


def write_up_approach(episodes: int, steps: int, checkpoint: str) -> float:
    """(b): steps per second of one-at-a-time, rebuilt, eager, MDN-sampling rollouts."""
    rng = np.random.default_rng(0)
    total_steps, start = 0, time.perf_counter()
    for episode in range(episodes):
        vae, memory = VAE(), MDNRNN()
        vae(tf.zeros((1, 64, 64, 3)))
        memory(tf.zeros((1, 1, 35)))
        tf.train.Checkpoint(vae=vae, memory=memory).restore(checkpoint).expect_partial()
        parameters = 0.1 * rng.standard_normal(PARAMETER_COUNT)
        env = gymnasium.make("CarRacing-v3", max_episode_steps=steps)
        frame, _ = env.reset(seed=episode)
        state = memory.initial_state(1)
        done = False
        while not done:
            observation = preprocess_frame(frame)[None].astype(np.float32) / 255.0
            mu, logvar = vae.encode(observation)
            z = mu + tf.exp(logvar / 2) * tf.random.normal(mu.shape)
            action = controller_actions(parameters, z.numpy(), state[0].numpy())
            frame, _, terminated, truncated, _ = env.step(action[0])
            done = terminated or truncated
            inputs = tf.concat([z, action], axis=-1)[:, None, :]
            (logit_pi, mixture_mu, log_sigma), state = memory(inputs, initial_state=list(state))
            sample_next_latent(logit_pi, mixture_mu, log_sigma)  # computed and unused, as there
            total_steps += 1
        env.close()
    return total_steps / (time.perf_counter() - start)


def bare_env(episodes: int, steps: int) -> float:
    """(c): steps per second of FastCarRacing alone with random actions, resets included
    as in (a)."""
    env = gymnasium.make(FAST_ENV_ID, max_episode_steps=steps)
    env.action_space.seed(0)
    total_steps, start = 0, time.perf_counter()
    for episode in range(episodes):
        env.reset(seed=episode)
        done = False
        while not done:
            _, _, terminated, truncated, _ = env.step(env.action_space.sample())
            done = terminated or truncated
            total_steps += 1
    return total_steps / (time.perf_counter() - start)


def main():
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter
    )
    parser.add_argument("--steps", type=int, default=300, help="steps per episode")
    parser.add_argument("--envs", type=int, default=8, help="envs in lock-step for (a)")
    parser.add_argument("--episodes", type=int, default=16, help="episodes for (a) and (c)")
    parser.add_argument("--write-up-episodes", type=int, default=3, help="episodes for (b)")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as directory:
        vae, memory = VAE(), MDNRNN()
        vae(tf.zeros((1, 64, 64, 3)))
        memory(tf.zeros((1, 1, 35)))
        checkpoint = tf.train.Checkpoint(vae=vae, memory=memory).save(f"{directory}/models")
        rates = {
            "(a) batched engine, FastCarRacing": batched_engine(
                args.episodes, args.envs, args.steps
            ),
            "(b) write-up approach, stock env": write_up_approach(
                args.write_up_episodes, args.steps, checkpoint
            ),
            "(c) bare FastCarRacing, no agent": bare_env(args.episodes, args.steps),
        }
    for name, rate in rates.items():
        print(f"{name:>36}: {rate:7.1f} steps/s per core ({1e3 / rate:.2f} ms/step)")
    engine, write_up, bare = rates.values()
    print(f"{'(a) / (b)':>36}: {engine / write_up:.2f}x")
    print(f"{'agent overhead (c -> a)':>36}: {100 * (bare / engine - 1):.1f}% more time per step")


if __name__ == "__main__":
    main()
