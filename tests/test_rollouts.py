import contextlib
import functools
import json
import os
import resource
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import gymnasium
import numpy as np
import pytest
import tensorflow as tf
from pool_handlers import BrokenAtStart, DiesAtStart, SlowToStart, Squarer

from worldmodels.control.controller import PARAMETER_COUNT, controller_actions
from worldmodels.control.rollouts import EpisodeTask, RolloutEngine
from worldmodels.data.car_racing import make_env
from worldmodels.data.tf_records import load_episode, write_record_file
from worldmodels.params import EnvParams
from worldmodels.seeds import latent_noise
from worldmodels.vision.vae import build_vae
from worldmodels.workers import WorkerError, WorkerPool
from worldmodels.world_model import CompiledEncoder, WorldModel


def written_episodes(results, directory) -> dict:
    """The episodes whose records came back in `results`, written as the driver writes them
    and read back, by key."""
    episodes = {}
    for result in results:
        path = directory / f"episode-{result.key}.tfrecord"
        assert write_record_file(path, result.record) == path.stat().st_size
        episodes[result.key] = load_episode(path)
    return episodes


def test_pool_returns_every_result_in_order():
    with WorkerPool(Squarer, num_workers=2, timeout=60) as pool:
        results = pool.map([[1, 2], [3], [4, 5, 6]])
    assert [[square for _, square, _ in job] for job in results] == [[1, 4], [9], [16, 25, 36]]


def test_a_killed_worker_is_replaced_and_its_job_rerun():
    with WorkerPool(Squarer, num_workers=2, timeout=60) as pool:
        pool.map([[1], [2]])  # both workers ready
        victim = pool.workers[0].process.pid

        def kill_when_busy():
            while pool.workers[0].job is None:
                time.sleep(0.01)
            os.kill(victim, signal.SIGKILL)

        killer = threading.Thread(target=kill_when_busy)
        killer.start()
        results = pool.map([["slow"], ["slow"], ["slow"], [7]])
        killer.join()
        assert pool.replaced == 1
    assert [job[0][1] for job in results] == [0, 0, 0, 49]
    assert victim not in {pid for job in results for _, _, pid in job}


def test_a_hanging_job_is_timed_out_and_rerun_elsewhere_then_given_up():
    with WorkerPool(Squarer, num_workers=2, timeout=2, max_attempts=2) as pool:
        pool.map([[0], [0]])
        with pytest.raises(WorkerError, match="hung its worker 2 times"):
            pool.map([[1], ["hang"], [2]])
        assert pool.replaced == 2
        assert pool.map([[3]])[0][0][1] == 9  # the pool still works


def test_a_job_that_kills_every_worker_is_reported():
    with WorkerPool(Squarer, num_workers=1, timeout=60, max_attempts=2) as pool:
        with pytest.raises(WorkerError, match="killed its worker 2 times"):
            pool.map([["die"]])


def test_a_worker_slow_to_start_is_replaced_and_only_repeated_slow_starts_give_up(tmp_path):
    (tmp_path / "once").mkdir()
    once = functools.partial(SlowToStart, str(tmp_path / "once"), slow_starts=1)
    with WorkerPool(once, num_workers=1, timeout=60, startup_timeout=3) as pool:
        assert pool.map([[2], [3]])[1][0][1] == 9
        assert pool.replaced == 1
    (tmp_path / "always").mkdir()
    always = functools.partial(SlowToStart, str(tmp_path / "always"), slow_starts=99)
    with WorkerPool(always, num_workers=1, timeout=60, max_attempts=2, startup_timeout=3) as pool:
        with pytest.raises(
            WorkerError,
            match=r"2 workers in a row failed to start \(the last was not ready within 3 s",
        ):
            pool.map([[2]])
        assert pool.replaced == 1


@contextlib.contextmanager
def deadline(seconds: int):
    """Fails the test if its block is not done within `seconds` (instead of hanging)."""

    def fail(signum, frame):
        raise TimeoutError(f"not done within {seconds} s")

    previous = signal.signal(signal.SIGALRM, fail)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


def test_a_worker_that_dies_while_starting_is_replaced_and_only_repeated_deaths_give_up(tmp_path):
    # Before, such workers were replaced without end: the map never returned.
    (tmp_path / "once").mkdir()
    once = functools.partial(DiesAtStart, str(tmp_path / "once"), deaths=1)
    with WorkerPool(once, num_workers=1, timeout=60) as pool:
        assert pool.map([[2], [3]])[1][0][1] == 9
        assert pool.replaced == 1
    (tmp_path / "always").mkdir()
    always = functools.partial(DiesAtStart, str(tmp_path / "always"), deaths=99)
    with WorkerPool(always, num_workers=1, timeout=60, max_attempts=3) as pool, deadline(120):
        with pytest.raises(
            WorkerError, match=r"3 workers in a row failed to start \(the last died\)"
        ):
            pool.map([[2]])
        assert pool.replaced == 2
        assert len(list((tmp_path / "always").iterdir())) == 3


def test_handler_exceptions_and_broken_workers_surface_with_their_traceback():
    with WorkerPool(Squarer, num_workers=1, timeout=60) as pool:
        with pytest.raises(WorkerError, match="a handler bug"):
            pool.map([["raise"]])
    with WorkerPool(BrokenAtStart, num_workers=1, timeout=60) as pool:
        with pytest.raises(WorkerError, match="cannot build the agent"):
            pool.map([[1]])


def test_a_command_s_cpu_time_counts_its_pool_s_workers():
    """What `time` reports of a command, its children's rusage, holds its workers' CPU: the
    command waits at exit for the fork server, which reaped them."""
    script = (
        "from pool_handlers import Busy\n"
        "from worldmodels.workers import WorkerPool\n"
        "if __name__ == '__main__':\n"
        "    with WorkerPool(Busy, 2) as pool:\n"
        "        pool.map([1.0, 1.0])\n"
    )
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    subprocess.run([sys.executable, "-c", script], check=True, cwd=Path(__file__).parent)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    used = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
    assert used >= 2.0


@pytest.mark.parametrize("latent", ["continuous", "discrete"])
def test_the_compiled_encoder_equals_the_keras_encoder_and_ignores_the_batch(latent):
    vae = build_vae(latent)
    frames = np.random.default_rng(0).integers(0, 256, (16, 64, 64, 3), dtype=np.uint8)
    expected = vae.posterior(frames.astype(np.float32) / 255.0)
    encoder = CompiledEncoder(vae)
    batched = encoder(frames)
    assert [part.shape for part in batched] == [tuple(part.shape) for part in expected]
    for got, want in zip(batched, expected):
        assert got.dtype == np.float32
        np.testing.assert_allclose(got, want.numpy(), rtol=1e-4, atol=1e-5)
    # A frame's parameters are the same bits alone, in a smaller batch, and in the full one.
    for count in (1, 5, 16):
        for got, whole in zip(encoder(frames[:count]), batched):
            np.testing.assert_array_equal(got, whole[:count])


def test_an_agent_encodes_with_the_weights_it_has_now():
    agent = WorldModel(home=None, seed=0)
    frames = np.random.default_rng(1).integers(0, 256, (4, 64, 64, 3), dtype=np.uint8)
    before = agent.encode(frames)[0]
    agent.randomize(np.random.default_rng(2), scale=0.01)
    after = agent.encode(frames)[0]
    np.testing.assert_allclose(
        after, agent.vae.posterior(frames.astype(np.float32) / 255.0)[0].numpy(), rtol=1e-4
    )
    assert not np.allclose(before, after)


def test_engine_steps_equal_the_unbatched_computation_for_each_env(tmp_path):
    """Three envs with three controllers in lock-step, episodes of different lengths; each
    recorded step is recomputed alone: batch-1 encoder, own z noise, TF LSTM step."""
    agent = WorldModel(home=None, seed=0)
    lengths = (12, 7, 9)
    rng = np.random.default_rng(0)
    tasks = [
        EpisodeTask(
            i,
            0.3 * rng.standard_normal(PARAMETER_COUNT),
            seed=100 + i,
            keep_record=True,
        )
        for i in range(3)
    ]
    envs = [make_env(EnvParams(episode_length=length)) for length in lengths]
    results = RolloutEngine(agent, envs).run(tasks)
    assert sorted((r.key, r.steps) for r in results) == [(0, 12), (1, 7), (2, 9)]

    episodes = written_episodes(results, tmp_path)
    for task, length in zip(tasks, lengths):
        episode = episodes[task.key]
        assert episode["policy"] == "controller" and episode["seed"] == task.seed
        noise = latent_noise(task.seed)  # its own stream, not the track's
        h = c = tf.zeros((1, 256))
        env = make_env(EnvParams(episode_length=length))
        observation, _ = env.reset(seed=task.seed)
        total = 0.0
        for t in range(length):
            # o_t is the frame a_t was computed from, and it is what the env showed.
            np.testing.assert_array_equal(episode["observation"][t], observation)
            mu, logvar = agent.vae.encode(observation[None].astype(np.float32) / 255.0)
            z = mu.numpy() + np.exp(logvar.numpy() / 2) * noise.standard_normal((1, 32))
            action = controller_actions(task.parameters, z, h.numpy())
            np.testing.assert_allclose(episode["action"][t], action[0], atol=1e-4)
            observation, reward, *_ = env.step(episode["action"][t])
            total += reward
            h, c = agent.memory.step(tf.constant(z, tf.float32), tf.constant(action), (h, c))
        result = next(r for r in results if r.key == task.key)
        assert result.total_reward == pytest.approx(total)


def test_an_engine_reading_the_mode_steps_on_mu_without_noise(tmp_path):
    """With latent "mode", each recorded step recomputed alone from the batch-1 encoder's mu
    (no draw); the sampled episode on the same track takes other actions."""
    agent = WorldModel(home=None, seed=0)
    parameters = 0.3 * np.random.default_rng(0).standard_normal(PARAMETER_COUNT)
    task = EpisodeTask(0, parameters, seed=100, keep_record=True)
    length = 8
    (result,) = RolloutEngine(agent, [make_env(EnvParams(episode_length=length))], "mode").run(
        [task]
    )
    episode = written_episodes([result], tmp_path)[0]
    h = c = tf.zeros((1, 256))
    env = make_env(EnvParams(episode_length=length))
    observation, _ = env.reset(seed=task.seed)
    for t in range(length):
        np.testing.assert_array_equal(episode["observation"][t], observation)
        mu, _ = agent.vae.encode(observation[None].astype(np.float32) / 255.0)
        action = controller_actions(parameters, mu.numpy(), h.numpy())
        np.testing.assert_allclose(episode["action"][t], action[0], atol=1e-4)
        observation, *_ = env.step(episode["action"][t])
        h, c = agent.memory.step(mu, tf.constant(action), (h, c))
    sampled = RolloutEngine(agent, [make_env(EnvParams(episode_length=length))]).run([task])
    sampled_actions = written_episodes(sampled, tmp_path)[0]["action"]
    assert not np.allclose(sampled_actions, episode["action"], atol=1e-3)
    with pytest.raises(ValueError, match="latent must be one of"):
        RolloutEngine(agent, [], "mean")


def test_the_mode_of_a_discrete_code_is_the_one_hot_of_each_likeliest_class():
    agent = WorldModel(home=None, seed=0)
    agent.vae = build_vae("discrete")  # before the first encode, which compiles the encoder
    frames = np.random.default_rng(3).integers(0, 256, (2, 64, 64, 3), dtype=np.uint8)
    logits = agent.vae.logits(frames.astype(np.float32) / 255.0).numpy()
    codes = agent.mode_codes(frames).reshape(2, 32, 32)
    np.testing.assert_array_equal(codes.argmax(-1), logits.argmax(-1))
    np.testing.assert_array_equal(codes.sum(-1), np.ones((2, 32)))


def test_a_rollout_worker_killed_mid_generation_does_not_lose_episodes(agent_home):
    from functools import partial

    from worldmodels.control.rollouts import (
        RolloutConfig,
        RolloutWorker,
        run_episode_tasks,
    )

    config = RolloutConfig(str(agent_home), EnvParams(episode_length=60), envs_per_worker=2)
    rng = np.random.default_rng(1)
    tasks = [EpisodeTask(i, 0.1 * rng.standard_normal(PARAMETER_COUNT), seed=i) for i in range(8)]
    with WorkerPool(partial(RolloutWorker, config), num_workers=2, timeout=300) as pool:
        victim = pool.workers[0]

        def kill_when_busy():
            while victim.job is None:
                time.sleep(0.01)
            os.kill(victim.process.pid, signal.SIGKILL)

        killer = threading.Thread(target=kill_when_busy)
        killer.start()
        results = run_episode_tasks(pool, tasks, envs_per_worker=2, description="generation")
        killer.join()
        assert pool.replaced == 1
    assert sorted(results) == list(range(8))
    assert all(result.steps == 60 for result in results.values())


def test_a_worker_s_results_carry_the_cpu_time_the_kernel_counted_for_its_jobs(agent_home):
    """The CPU seconds results report, summed, equal what the kernel counts for the worker
    process over the jobs (/proc/PID/stat, an independent clock), each job's split evenly."""
    from functools import partial

    from worldmodels.control.rollouts import RolloutConfig, RolloutWorker, run_episode_tasks

    def kernel_cpu_seconds(pid: int) -> float:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime, stime

    config = RolloutConfig(str(agent_home), EnvParams(episode_length=200), envs_per_worker=2)
    rng = np.random.default_rng(2)
    tasks = [EpisodeTask(i, 0.1 * rng.standard_normal(PARAMETER_COUNT), seed=i) for i in range(4)]
    with WorkerPool(partial(RolloutWorker, config), num_workers=1, timeout=300) as pool:
        run_episode_tasks(pool, tasks[:1], envs_per_worker=2, description="warm-up")
        pid = pool.workers[0].process.pid
        before = kernel_cpu_seconds(pid)
        results = run_episode_tasks(pool, tasks, envs_per_worker=2, description="measured")
        counted = kernel_cpu_seconds(pid) - before
    reported = [result.cpu_seconds for result in results.values()]
    assert counted > 0.2
    assert sum(reported) == pytest.approx(counted, rel=0.1, abs=0.05)
    assert reported[0] == reported[1] and reported[2] == reported[3]  # two jobs of two


def test_a_rollout_worker_runs_tensorflow_and_blas_on_one_thread():
    """A fresh process, as a spawned worker is: after building a RolloutWorker, TensorFlow's
    pools and every BLAS library loaded (numpy's OpenBLAS) use one thread."""
    probe = """
import json
import tensorflow as tf
from threadpoolctl import threadpool_info
from worldmodels.control.rollouts import RolloutConfig, RolloutWorker
from worldmodels.params import EnvParams
RolloutWorker(RolloutConfig(None, EnvParams(episode_length=5), envs_per_worker=1))
print(json.dumps({
    "tensorflow": [tf.config.threading.get_intra_op_parallelism_threads(),
                   tf.config.threading.get_inter_op_parallelism_threads()],
    "blas": [pool["num_threads"] for pool in threadpool_info() if pool["user_api"] == "blas"],
}))
"""
    output = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=300
    ).stdout
    threads = json.loads(output.strip().splitlines()[-1])
    assert threads["tensorflow"] == [1, 1]
    assert threads["blas"] and set(threads["blas"]) == {1}


@pytest.mark.parametrize(
    "episodes, envs_per_worker, workers, sizes",
    [
        (1024, 16, 64, [16] * 64),  # a paper-size generation: one full job per worker
        (16, 16, 64, [1] * 16),  # an evaluation: spread, not one worker doing all 16
        (100, 16, 8, [13] * 7 + [9]),
        (5, 4, 1, [4, 1]),
    ],
)
def test_episode_jobs_are_no_larger_than_the_envs_and_keep_every_worker_busy(
    episodes, envs_per_worker, workers, sizes
):
    from worldmodels.control.rollouts import episode_jobs

    jobs = episode_jobs(list(range(episodes)), envs_per_worker, workers)
    assert [len(job) for job in jobs] == sizes
    assert [task for job in jobs for task in job] == list(range(episodes))


def test_engine_with_a_v_only_controller_on_a_discrete_vae_equals_the_unbatched_computation(
    tmp_path,
):
    """Two envs in lock-step; each recorded step recomputed alone: batch-1 encoder logits,
    a hard sample with the episode's own noise, the 2-action controller on z alone."""
    from conftest import synthetic_episode

    from worldmodels import layout
    from worldmodels.data.tf_records import episode_filename, save_episode
    from worldmodels.vision import train_vae
    from worldmodels.vision.vae import hard_sample

    home = tmp_path / "home"
    for index in range(2):
        save_episode(
            layout.rollouts(home, "random") / episode_filename(index), synthetic_episode(20, index)
        )
    train_vae.main(
        ["--home", str(home), "--latent", "discrete", "--epochs", "1", "--batch-size", "16"]
        + ["--validation-share", "0"]
    )
    agent = WorldModel(home, with_memory=False)
    assert agent.memory is None and agent.code_width == 1024
    rng = np.random.default_rng(0)
    lengths = (9, 5)
    tasks = [
        EpisodeTask(i, 0.05 * rng.standard_normal(1024 * 2 + 2), seed=200 + i, keep_record=True)
        for i in range(2)
    ]
    envs = [make_env(EnvParams(episode_length=length)) for length in lengths]
    episodes = written_episodes(RolloutEngine(agent, envs, actions=2).run(tasks), tmp_path)
    for task, length in zip(tasks, lengths):
        episode = episodes[task.key]
        noise = latent_noise(task.seed)
        env = make_env(EnvParams(episode_length=length))
        observation, _ = env.reset(seed=task.seed)
        for t in range(length):
            np.testing.assert_array_equal(episode["observation"][t], observation)
            logits = agent.vae.logits(observation[None].astype(np.float32) / 255.0).numpy()
            code = hard_sample(logits, noise.uniform(size=(1, 32, 32))).reshape(1, -1)
            action = controller_actions(task.parameters, code, np.zeros((1, 0)), actions=2)
            np.testing.assert_allclose(episode["action"][t], action[0], atol=1e-5)
            observation, *_ = env.step(episode["action"][t])


def test_a_stalled_episode_ends_early_with_the_reward_a_stalled_car_would_collect():
    """A controller that brakes and never accelerates reaches no tile after its first steps;
    stopped after 20 steps without one, its total equals the whole 100-step episode's."""
    agent = WorldModel(home=None, seed=0)
    braking = np.zeros(PARAMETER_COUNT)
    braking[-3:] = [0.0, -20.0, 20.0]  # gas (tanh + 1) / 2 = 0, brake 1, whatever z and h
    whole, stopped = (
        RolloutEngine(agent, [make_env(EnvParams(episode_length=100))]).run(
            [EpisodeTask(0, braking, seed=3, stall_steps=stall_steps)]
        )[0]
        for stall_steps in (0, 20)
    )
    assert whole.steps == 100 and not whole.stalled
    assert stopped.stalled and stopped.steps < 40
    assert stopped.total_reward == pytest.approx(whole.total_reward, abs=1e-6)


class LapFinishedAtReset(gymnasium.Wrapper):
    """Marks every tile of the track visited on reset: CarRacing's next step ends the episode
    as a finished lap."""

    def reset(self, **kwargs):
        observation, info = self.env.reset(**kwargs)
        self.env.unwrapped.tile_visited_count = len(self.env.unwrapped.track)
        return observation, info


def test_results_say_whether_carracing_ended_the_episode_on_a_finished_lap():
    agent = WorldModel(home=None, seed=0)
    task = EpisodeTask(0, np.zeros(PARAMETER_COUNT), seed=3)
    env = make_env(EnvParams(episode_length=50))
    finished = RolloutEngine(agent, [LapFinishedAtReset(env)]).run([task])[0]
    assert finished.lap_finished and finished.steps == 1
    truncated = RolloutEngine(agent, [env]).run([task])[0]
    assert not truncated.lap_finished and truncated.steps == 50
