"""Handlers for WorkerPool tests; importable by spawned workers."""

import os
import time


class Squarer:
    """Squares numbers; a job is a list of ints. Special values misbehave on purpose."""

    def __call__(self, job):
        results = []
        for value in job:
            if value == "hang":
                time.sleep(3600)
            if value == "die":
                os._exit(1)
            if value == "raise":
                raise ValueError("a handler bug")
            if value == "slow":
                time.sleep(1.0)
                value = 0
            results.append((value, value * value, os.getpid()))
        return results


class SlowToStart(Squarer):
    """A Squarer whose first `slow_starts` workers take an hour to build (counted in files in
    `directory`, which outlive the workers)."""

    def __init__(self, directory, slow_starts):
        starts = len(os.listdir(directory))
        open(os.path.join(directory, f"start-{starts}"), "w").close()
        if starts < slow_starts:
            time.sleep(3600)


class DiesAtStart(Squarer):
    """A Squarer whose first `deaths` workers end their process while they build (counted in
    files in `directory`), as a crash or an out-of-memory kill would."""

    def __init__(self, directory, deaths):
        starts = len(os.listdir(directory))
        open(os.path.join(directory, f"start-{starts}"), "w").close()
        if starts < deaths:
            os._exit(1)


class BrokenAtStart:
    def __init__(self):
        raise RuntimeError("cannot build the agent")


TARGET_MEAN_PARAMETER = 1.0  # the best controllers of TargetFitness: parameters averaging this


class TargetFitness:
    """Stands in for a rollout worker: an episode's total reward is
    -(mean(parameters) - TARGET_MEAN_PARAMETER)^2 whatever its track, a known maximum (0)."""

    def __init__(self, config):
        pass

    def __call__(self, tasks):
        from worldmodels.control.rollouts import EpisodeResult

        return [
            EpisodeResult(
                task.key, -float((task.parameters.mean() - TARGET_MEAN_PARAMETER) ** 2), 1
            )
            for task in tasks
        ]


class FailsOnce:
    """Squares numbers, except that the first attempt at "die" kills its worker and the first
    at "hang" hangs it; later attempts return 0 (attempts are counted in files in `directory`,
    which outlive the workers). Every attempt is logged there too."""

    def __init__(self, directory):
        self.directory = directory

    def __call__(self, job):
        results = []
        for value in job:
            with open(os.path.join(self.directory, "attempts"), "a") as log:
                log.write(f"{value}\n")
            if value in ("die", "hang"):
                marker = os.path.join(self.directory, value)
                if not os.path.exists(marker):
                    open(marker, "w").close()
                    if value == "die":
                        os._exit(1)
                    time.sleep(3600)
                value = 0
            results.append(value * value)
        return results


class Busy:
    """Uses as many CPU seconds as a job says, then returns it."""

    def __call__(self, job):
        started = time.process_time()
        while time.process_time() - started < job:
            pass
        return job
