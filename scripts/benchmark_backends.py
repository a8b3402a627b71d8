"""The Ray backend against the local pool, side by side in one run: the same generation-like
batch of full-agent episodes on each, with the same number of workers.

    python scripts/benchmark_backends.py --workers 2 --episodes 64 --episode-length 300

Each backend gets `--workers` workers (processes, or Ray actors of one CPU on a private local
Ray instance), each stepping `--envs-per-worker` environments in lock-step with paper-size V and
M (random weights: the cost is that of trained ones), and runs `--episodes` episodes of
`--episode-length` steps dealt out in jobs as train_controller deals them, `--repeats` times,
alternating backends. Reported per backend (median over repeats): episodes per second of wall
time, and CPU-seconds per step spent inside the jobs (measured in the workers), then the Ray
backend's overhead in wall time. Start-up (spawning, building V and M, starting Ray) is timed
apart: it is paid once per command, not per generation. Run it on an otherwise idle machine.
"""

import argparse
import statistics
import time
from functools import partial

import numpy as np

from worldmodels.control.controller import PARAMETER_COUNT
from worldmodels.control.rollouts import EpisodeTask, RolloutConfig, RolloutWorker, episode_jobs
from worldmodels.params import EnvParams
from worldmodels.workers import open_pool


class TimedRolloutWorker(RolloutWorker):
    """A rollout worker that also reports the CPU time it spent on each job."""

    def __call__(self, tasks):
        started = time.process_time()
        results = super().__call__(tasks)
        return results, time.process_time() - started


def run_once(pool, tasks, envs_per_worker: int) -> tuple[float, float, int]:
    """(wall seconds, CPU seconds inside jobs, steps) of one batch of episodes."""
    jobs = episode_jobs(tasks, envs_per_worker, pool.num_workers)
    started = time.perf_counter()
    finished = pool.map(jobs)
    wall = time.perf_counter() - started
    steps = sum(result.steps for results, _ in finished for result in results)
    return wall, sum(cpu for _, cpu in finished), steps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--envs-per-worker", type=int, default=16)
    parser.add_argument("--episodes", type=int, default=64)
    parser.add_argument("--episode-length", type=int, default=300)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    config = RolloutConfig(
        None, EnvParams(episode_length=args.episode_length), args.envs_per_worker
    )
    rng = np.random.default_rng(0)
    tasks = [
        EpisodeTask(i, 0.1 * rng.standard_normal(PARAMETER_COUNT), seed=1000 + i)
        for i in range(args.episodes)
    ]
    pools, startup = {}, {}
    for backend in ("local", "ray"):
        started = time.perf_counter()
        pools[backend] = open_pool(
            backend, partial(TimedRolloutWorker, config), args.workers, timeout=3600.0
        )
        run_once(pools[backend], tasks[: args.workers], 1)  # every worker built and warm
        startup[backend] = time.perf_counter() - started
    measured = {backend: [] for backend in pools}
    try:
        for _ in range(args.repeats):
            for backend, pool in pools.items():
                measured[backend].append(run_once(pool, tasks, args.envs_per_worker))
    finally:
        for pool in pools.values():
            pool.close()

    print(
        f"{args.episodes} episodes of {args.episode_length} steps on {args.workers} workers x "
        f"{args.envs_per_worker} envs, median of {args.repeats}:"
    )
    walls = {}
    for backend, runs in measured.items():
        walls[backend] = statistics.median(wall for wall, _, _ in runs)
        cpu_per_step = statistics.median(cpu / steps for _, cpu, steps in runs)
        print(
            f"{backend:>6}: {args.episodes / walls[backend]:6.2f} episodes/s, "
            f"{1000 * cpu_per_step:5.2f} ms CPU per step in the jobs, "
            f"start-up {startup[backend]:5.1f} s"
        )
    print(f"Ray backend's wall-time overhead: {walls['ray'] / walls['local'] - 1:+.1%}")


if __name__ == "__main__":
    main()
