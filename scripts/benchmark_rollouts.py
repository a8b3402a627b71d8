"""Full-agent environment steps per CPU-second (one core), several ways, side by side in one run.

    python scripts/benchmark_rollouts.py --steps 300 --envs 4 8 16

(a) this project's engine: FastCarRacing, several envs in lock-step, one batched encoder call
    (LiteRT) and one numpy LSTM step per step, V and M built once, TensorFlow and BLAS on one
    thread as in each rollout worker; once more with numpy's BLAS threads left at their
    default, and once with the encoder run by TensorFlow instead of LiteRT;
(b) the write-up's approach: stock CarRacing-v3, one episode at a time, batch-1 eager model
    calls, V and M rebuilt and reloaded for every episode, the MDN sampled every step;
(c) bare FastCarRacing, no agent, replaying the actions (a)'s agent took on the same tracks:
    the floor for (a), the env doing exactly the work it does there (random actions drive the
    car elsewhere and draw other frames, which cost less: shown as (c'));
(d) production: a generation as `train_controller` runs it, one rollout worker process per
    core (`--workers`), each stepping its envs as (a) does, jobs from one driver; its rate is
    steps per second of wall time per worker, what the README's CPU-hour estimates use.
(a) and (c) are also run on stock CarRacing-v3, whose slower drawing makes the same agent cost
a smaller share of a step.

Rates are steps per second of CPU time of the whole process (all its threads), the cost that
matters when every core runs a worker; (a) and (c) are the median of `--repeats` interleaved
runs. Then (a)'s extra time over (c) is split into its parts, and the VAE encoder's cost is
compared with its floor: its multiply-adds at the rate this core reaches on a large matrix
product. V and M have random weights (the cost is the same as trained ones).
"""

import argparse
import os
import statistics
import tempfile
import time
from functools import partial

import tensorflow as tf
from threadpoolctl import threadpool_info, threadpool_limits

DEFAULT_BLAS_THREADS = max(pool["num_threads"] for pool in threadpool_info())

from worldmodels.control.rollouts import use_one_thread  # noqa: E402

use_one_thread()  # before any TensorFlow operation

import gymnasium  # noqa: E402
import keras  # noqa: E402
import numpy as np  # noqa: E402

from worldmodels.control.controller import PARAMETER_COUNT, controller_actions  # noqa: E402
from worldmodels.control.rollouts import (  # noqa: E402
    EpisodeTask,
    RolloutConfig,
    RolloutEngine,
    RolloutWorker,
    run_episode_tasks,
)
from worldmodels.data.car_racing import (  # noqa: E402
    ENV_IDS,
    FAST_ENV_ID,
    make_env,
    preprocess_frame,
)
from worldmodels.memory.memory import MDNRNN, sample_next_latent  # noqa: E402
from worldmodels.params import ControllerParams, EnvParams  # noqa: E402
from worldmodels.vision.vae import VAE  # noqa: E402
from worldmodels.workers import open_pool  # noqa: E402
from worldmodels.world_model import WorldModel  # noqa: E402


def cpu_ms_per_step(run) -> float:
    """CPU milliseconds (all threads of this process) per step of `run()`, which returns the
    number of steps it took."""
    start = time.process_time()
    steps = run()
    return 1e3 * (time.process_time() - start) / steps


def per_call_ms(function, calls: int) -> float:
    function()
    start = time.perf_counter()
    for _ in range(calls):
        function()
    return 1e3 * (time.perf_counter() - start) / calls


def lockstep_envs(count: int, steps: int, env: str = "fast") -> list[gymnasium.Env]:
    return [make_env(EnvParams(env=env, episode_length=steps)) for _ in range(count)]


def batched_engine(agent: WorldModel, episodes: int, envs: list):
    """(a): a function that runs `episodes` on a lock-step engine of `envs`, episode i on
    the track of seed i."""
    engine = RolloutEngine(agent, envs)
    rng = np.random.default_rng(0)
    tasks = [
        EpisodeTask(i, 0.1 * rng.standard_normal(PARAMETER_COUNT), seed=i) for i in range(episodes)
    ]
    engine.run(tasks[: len(envs)])  # trace the encoder once, outside the timing
    return lambda: sum(result.steps for result in engine.run(tasks))


def write_up_approach(episodes: int, steps: int, checkpoint: str) -> int:
    """(b): one-at-a-time, rebuilt, eager, MDN-sampling rollouts; returns the steps taken."""
    rng = np.random.default_rng(0)
    total_steps = 0
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
    return total_steps


def production_ms_per_step(workers: int, envs: int, rounds: int, steps: int) -> float:
    """(d): wall milliseconds x workers per step of `rounds` jobs of `envs` episodes on each
    of `workers` rollout processes (the pool `train_controller` opens), after one warm-up job
    each (start-up and tracing, once per run in production)."""
    config = RolloutConfig(None, EnvParams(episode_length=steps), envs)
    rng = np.random.default_rng(0)

    def tasks(count: int) -> list[EpisodeTask]:
        return [
            EpisodeTask(i, 0.1 * rng.standard_normal(PARAMETER_COUNT), seed=i) for i in range(count)
        ]

    with open_pool("local", partial(RolloutWorker, config), workers, timeout=600) as pool:
        run_episode_tasks(pool, tasks(workers * envs), envs, "warm-up")
        started = time.perf_counter()
        results = run_episode_tasks(pool, tasks(rounds * workers * envs), envs, "generation")
        wall = time.perf_counter() - started
    return 1e3 * wall * workers / sum(result.steps for result in results.values())


class ActionLog(gymnasium.Wrapper):
    """Keeps the actions of each episode since the last reset, in `episodes[seed]`."""

    def __init__(self, env: gymnasium.Env, episodes: dict):
        super().__init__(env)
        self.episodes = episodes

    def reset(self, *, seed=None, options=None):
        self.actions = self.episodes[seed] = []
        return self.env.reset(seed=seed, options=options)

    def step(self, action):
        self.actions.append(np.array(action))
        return self.env.step(action)


def engine_actions(agent: WorldModel, episodes: int, envs: int, steps: int) -> list:
    """The actions (a) takes in each of its episodes (episode i on the track of seed i)."""
    logged = {}
    envs = [ActionLog(env, logged) for env in lockstep_envs(envs, steps)]
    batched_engine(agent, episodes, envs)()
    return [logged[seed] for seed in range(episodes)]


def bare_env(episode_actions: list, steps: int, env_id: str = FAST_ENV_ID) -> int:
    """(c): the env alone, resets included as in (a), episode i on the track of seed i with
    `episode_actions[i]`; returns the steps taken."""
    env = gymnasium.make(env_id, max_episode_steps=steps)
    total_steps = 0
    for seed, actions in enumerate(episode_actions):
        env.reset(seed=seed)
        for action in actions:
            _, _, terminated, truncated, _ = env.step(action)
            total_steps += 1
            if terminated or truncated:
                break
    return total_steps


def random_actions(episodes: int, steps: int) -> list:
    """(c'): uniform random actions, `steps` for each episode (an episode that ends earlier
    stops there)."""
    space = gymnasium.make(FAST_ENV_ID).action_space
    space.seed(0)
    return [[space.sample() for _ in range(steps)] for _ in range(episodes)]


def encoder_multiply_adds(vae: VAE) -> int:
    """Multiply-adds of one frame through the encoder's convolutions and dense layer."""
    total = 0
    for layer in vae.encoder.layers:
        if isinstance(layer, (keras.layers.Conv2D, keras.layers.Dense)):
            total += int(np.prod(layer.output.shape[1:])) * int(np.prod(layer.kernel.shape[:-1]))
    return total


def matmul_gflops(size: int = 1024) -> float:
    """Single-thread float32 rate of TensorFlow on a large matrix product: what this core
    can reach."""
    matrix = tf.random.normal((size, size))
    product = tf.function(lambda: tf.matmul(matrix, matrix))
    return 2 * size**3 / per_call_ms(product, 50) / 1e6


def encoder_ms(agent: WorldModel, envs: int) -> float:
    """Milliseconds per frame of the agent's encoder alone, at a batch of `envs`."""
    frames = np.random.default_rng(0).integers(0, 256, (envs, 64, 64, 3), dtype=np.uint8)
    return per_call_ms(lambda: agent.encode(frames), 300) / envs


def overhead_parts(agent: WorldModel, envs: int) -> dict[str, float]:
    """Milliseconds per step of each piece of agent work, measured alone, at a batch of `envs`."""
    rng = np.random.default_rng(0)
    raw_frame = rng.integers(0, 256, (96, 96, 3), dtype=np.uint8)
    z = rng.standard_normal((envs, 32)).astype(np.float32)
    h = np.zeros((envs, 256), np.float32)
    parameters = rng.standard_normal((envs, PARAMETER_COUNT))

    def memory_and_controller():
        actions = controller_actions(parameters, z, h)
        agent.numpy_memory.lstm_step(z, actions, h, h)

    return {
        "VAE encoder (LiteRT)": encoder_ms(agent, envs),
        "crop + PIL resize": per_call_ms(lambda: preprocess_frame(raw_frame), 2000),
        "LSTM step + controller": per_call_ms(memory_and_controller, 1000) / envs,
    }


def main():
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter
    )
    parser.add_argument("--steps", type=int, default=300, help="steps per episode")
    parser.add_argument(
        "--envs",
        type=int,
        nargs="+",
        default=[4, 8, 16],
        help="envs in lock-step for (a); the default envs per worker also runs on stock",
    )
    parser.add_argument("--episodes", type=int, default=16, help="episodes for (a) and (c)")
    parser.add_argument("--write-up-episodes", type=int, default=3, help="episodes for (b)")
    parser.add_argument("--repeats", type=int, default=3, help="interleaved runs of (a) and (c)")
    parser.add_argument(
        "--workers", type=int, default=os.cpu_count(), help="rollout processes for (d)"
    )
    parser.add_argument("--rounds", type=int, default=2, help="jobs per worker for (d)")
    args = parser.parse_args()

    default_envs = ControllerParams().envs_per_worker
    reference_envs = default_envs if default_envs in args.envs else args.envs[-1]
    agent = WorldModel(None, seed=0)
    engines = {
        envs: batched_engine(agent, args.episodes, lockstep_envs(envs, args.steps))
        for envs in args.envs
    }
    tensorflow_agent = WorldModel(None, seed=0)
    tensorflow_agent.compile_encoder = False
    tensorflow_engine = batched_engine(
        tensorflow_agent, args.episodes, lockstep_envs(reference_envs, args.steps)
    )
    stock_engine = batched_engine(
        agent, args.episodes, lockstep_envs(reference_envs, args.steps, "stock")
    )
    # The same for every engine above: an episode's actions do not depend on its batch, and
    # FastCarRacing's frames are stock's.
    actions = engine_actions(agent, args.episodes, reference_envs, args.steps)
    random = random_actions(args.episodes, args.steps)
    engine_ms = {envs: [] for envs in args.envs}
    bare_ms, random_ms, tensorflow_ms, stock_engine_ms, stock_bare_ms = [], [], [], [], []
    for _ in range(args.repeats):
        for envs, run in engines.items():
            engine_ms[envs].append(cpu_ms_per_step(run))
        tensorflow_ms.append(cpu_ms_per_step(tensorflow_engine))
        bare_ms.append(cpu_ms_per_step(lambda: bare_env(actions, args.steps)))
        random_ms.append(cpu_ms_per_step(lambda: bare_env(random, args.steps)))
        stock_engine_ms.append(cpu_ms_per_step(stock_engine))
        stock_bare_ms.append(
            cpu_ms_per_step(lambda: bare_env(actions, args.steps, ENV_IDS["stock"]))
        )
    engine_ms = {envs: statistics.median(times) for envs, times in engine_ms.items()}
    bare, random_bare = statistics.median(bare_ms), statistics.median(random_ms)
    tensorflow_encoder = statistics.median(tensorflow_ms)
    stock_engine, stock_bare = statistics.median(stock_engine_ms), statistics.median(stock_bare_ms)
    with threadpool_limits(limits=DEFAULT_BLAS_THREADS, user_api="blas"):
        unlimited = cpu_ms_per_step(engines[reference_envs])
    with tempfile.TemporaryDirectory() as directory:
        vae, memory = VAE(), MDNRNN()
        vae(tf.zeros((1, 64, 64, 3)))
        memory(tf.zeros((1, 1, 35)))
        checkpoint = tf.train.Checkpoint(vae=vae, memory=memory).save(f"{directory}/models")
        write_up = cpu_ms_per_step(
            lambda: write_up_approach(args.write_up_episodes, args.steps, checkpoint)
        )

    production = production_ms_per_step(args.workers, reference_envs, args.rounds, args.steps)

    def row(name: str, ms: float, unit: str = "CPU") -> None:
        print(f"{name:>46}: {1e3 / ms:7.1f} steps/s per core ({ms:.2f} ms {unit}/step)")

    for envs, ms in engine_ms.items():
        row(f"(a) batched engine, {envs} envs", ms)
    row(f"(a) {reference_envs} envs, BLAS on {DEFAULT_BLAS_THREADS} threads", unlimited)
    row(f"(a) {reference_envs} envs, TensorFlow encoder", tensorflow_encoder)
    row("(b) write-up approach, stock env", write_up)
    row("(c) bare FastCarRacing, no agent", bare)
    row("(c') bare FastCarRacing, random actions", random_bare)
    row(
        f"(d) production, {args.workers} workers x {reference_envs} envs",
        production,
        "wall x cores",
    )
    row(f"(a) {reference_envs} envs on stock CarRacing", stock_engine)
    row("(c) bare stock CarRacing, no agent", stock_bare)
    for envs, ms in engine_ms.items():
        print(f"{f'(a) / (b), {envs} envs':>46}: {write_up / ms:.2f}x")
    for envs, ms in engine_ms.items():
        print(f"{f'agent overhead (c -> a), {envs} envs':>46}: {100 * (ms / bare - 1):.1f}%")
    random_overhead = 100 * (engine_ms[reference_envs] / random_bare - 1)
    name = f"agent overhead (c' -> a), {reference_envs} envs"
    print(f"{name:>46}: {random_overhead:.1f}%")
    tensorflow_overhead = 100 * (tensorflow_encoder / bare - 1)
    name = f"agent overhead, TensorFlow encoder, {reference_envs} envs"
    print(f"{name:>46}: {tensorflow_overhead:.1f}%")
    production_gap = 100 * (production / engine_ms[reference_envs] - 1)
    print(f"{f'(d) over (a), {reference_envs} envs':>46}: {production_gap:+.1f}%")
    paper = ControllerParams()
    paper_steps = paper.generations * paper.popsize * paper.episodes_per_candidate * 1000
    paper_hours = production * paper_steps / 3.6e6
    print(f"{'paper-size controller run at (d), CPU-hours':>46}: {paper_hours:.0f}")
    stock_overhead = 100 * (stock_engine / stock_bare - 1)
    print(f"{f'agent overhead, stock CarRacing, {reference_envs} envs':>46}: {stock_overhead:.1f}%")

    parts = overhead_parts(agent, reference_envs)
    floor = 2 * encoder_multiply_adds(agent.vae) / (matmul_gflops() * 1e6)
    extra = engine_ms[reference_envs] - bare
    print(
        f"\nwhere (a)'s extra {extra:.2f} ms per step goes, {reference_envs} envs, each part alone:"
    )

    def part_row(name: str, ms: float) -> None:
        print(f"{name:>46}: {ms:.3f} ms ({100 * ms / bare:.1f}% of a bare step)")

    for name, ms in parts.items():
        part_row(name, ms)
    rest = extra - sum(parts.values())
    print(f"{'the rest (Python, caches shared by env and V)':>46}: {rest:.3f} ms")
    part_row("VAE encoder's floor at this core's matmul rate", floor)
    part_row(
        "the same encoder run by TensorFlow, alone", encoder_ms(tensorflow_agent, reference_envs)
    )


if __name__ == "__main__":
    main()
