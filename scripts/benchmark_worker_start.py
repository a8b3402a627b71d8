"""How long a pool of rollout workers takes to start, forked from the fork server (the pool's
way) against spawned (each worker importing TensorFlow itself), side by side in one run.

    python scripts/benchmark_worker_start.py --workers 2 --pools 3

Each pool starts `--workers` rollout workers with paper-size V and M (random weights) and runs
one one-step episode on each, as a command's first generation or evaluation does; `--pools`
pools are started one after the other, as a command starts one for training and others for
evaluations (the fork server, started with the first pool, serves the later ones). Reported per
way: the wall seconds and the CPU seconds (the workers' and the fork server's, ended or
running, as the recipe counts them) of each pool, and the ratios. Run it on an idle machine.
"""

import argparse
import resource
import time
from functools import partial

import numpy as np

from worldmodels.control.controller import PARAMETER_COUNT
from worldmodels.control.rollouts import EpisodeTask, RolloutConfig, RolloutWorker, episode_jobs
from worldmodels.params import EnvParams
from worldmodels.pipeline import cpu_seconds
from worldmodels.workers import WorkerPool


class SpawnedPool(WorkerPool):
    start_method = "spawn"


def children_cpu_seconds() -> float:
    """CPU seconds of this process's descendants, ended or running: the fork server and the
    workers it forked (its children, not ours) included."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    return cpu_seconds() - own.ru_utime - own.ru_stime


def start_pool(pool_type: type, workers: int) -> tuple[float, float]:
    """(wall seconds, CPU seconds of the processes it started) to start a pool and run one
    episode on each worker."""
    config = RolloutConfig(None, EnvParams(episode_length=1), envs_per_worker=1)
    tasks = [EpisodeTask(i, np.zeros(PARAMETER_COUNT), seed=i) for i in range(workers)]
    started, cpu_started = time.perf_counter(), children_cpu_seconds()
    with pool_type(partial(RolloutWorker, config), workers, timeout=3600.0) as pool:
        pool.map(episode_jobs(tasks, 1, workers))
        wall = time.perf_counter() - started
    return wall, children_cpu_seconds() - cpu_started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--pools", type=int, default=3)
    args = parser.parse_args()
    if args.pools < 2:
        parser.error("--pools must be at least 2: the later pools are what the fork server speeds")
    # Spawned first: the fork server must not exist yet when the forked pools' first starts.
    measured = {
        way: [start_pool(pool_type, args.workers) for _ in range(args.pools)]
        for way, pool_type in (("spawned", SpawnedPool), ("forked", WorkerPool))
    }
    for way, pools in measured.items():
        walls = ", ".join(f"{wall:.2f}" for wall, _ in pools)
        cpus = ", ".join(f"{cpu:.2f}" for _, cpu in pools)
        print(f"{way:8s} pools of {args.workers}: wall s {walls}; CPU s {cpus}")

    def ratio(pools: slice, part: int) -> float:  # spawned / forked, mean over `pools`
        spawned, forked = (np.mean([p[part] for p in measured[way][pools]]) for way in measured)
        return spawned / forked

    first, later = slice(0, 1), slice(1, None)
    print(
        f"spawned / forked: first pool {ratio(first, 0):.1f}x the wall time and "
        f"{ratio(first, 1):.1f}x the CPU, later pools {ratio(later, 0):.1f}x and "
        f"{ratio(later, 1):.1f}x"
    )


if __name__ == "__main__":
    main()
