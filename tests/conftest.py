import fcntl
import subprocess
import sys

import numpy as np
import pytest


@pytest.fixture(scope="module")
def ray_to_itself(tmp_path_factory):
    """Held by a module while it uses Ray or asserts that none runs: Ray's address "auto" joins
    any Ray instance on the machine, so two test processes (pytest-xdist's) must not run such
    modules at once. A lock file in the folder every process of the run shares."""
    with open(tmp_path_factory.getbasetemp().parent / "ray.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


@pytest.fixture
def home(tmp_path, monkeypatch):
    """A fresh experiments home; $WORLD_MODELS_HOME points at it so nothing touches ~."""
    path = tmp_path / "home"
    monkeypatch.setenv("WORLD_MODELS_HOME", str(path))
    return path


def synthetic_episode(length: int, seed: int = 0, policy: str = "random") -> dict:
    """An episode of random content with the record's shapes and dtypes."""
    rng = np.random.default_rng(seed)
    done = np.zeros(length, bool)
    done[-1] = True
    return {
        "observation": rng.integers(0, 256, (length, 64, 64, 3), dtype=np.uint8),
        "action": rng.uniform(-1, 1, (length, 3)).astype(np.float32),
        "reward": rng.normal(size=length).astype(np.float32),
        "done": done,
        "seed": seed,
        "policy": policy,
    }


@pytest.fixture(scope="session")
def real_frames():
    """300 preprocessed CarRacing frames from a white-noise episode."""
    from worldmodels.data.car_racing import make_env
    from worldmodels.params import EnvParams

    env = make_env(EnvParams(episode_length=300))
    env.action_space.seed(0)
    frames = [env.reset(seed=0)[0]]
    for _ in range(299):
        frames.append(env.step(env.action_space.sample())[0])
    env.close()
    return np.stack(frames)


@pytest.fixture(scope="session")
def agent_home(tmp_path_factory):
    """A home with a trained (tiny) VAE and MDN-RNN: stages 1-4 on 2 episodes of 40 steps.

    Shared by tests: copy it before changing it.
    """
    from worldmodels.data import sample_latent_stats, sample_policy
    from worldmodels.memory import train_memory
    from worldmodels.vision import train_vae

    home = tmp_path_factory.mktemp("agent-home")
    flags = ["--home", str(home)]
    sample_policy.main([*flags, "--episodes", "2", "--episode-length", "40", "--num-process", "1"])
    train_vae.main([*flags, "--epochs", "1", "--batch-size", "16", "--shuffle-buffer", "64"])
    sample_latent_stats.main(flags)
    train_memory.main([*flags, "--epochs", "1", "--batch-size", "2"])
    return home


@pytest.fixture(scope="session")
def trained_controller_home(agent_home, tmp_path_factory):
    """`agent_home` plus two CMA-ES generations of 4 controllers, each evaluated. Shared."""
    import shutil

    from worldmodels.control import train_controller

    home = tmp_path_factory.mktemp("controller") / "home"
    shutil.copytree(agent_home, home)
    train_controller.main(
        [
            "--home",
            str(home),
            "--generations",
            "2",
            "--popsize",
            "4",
            "--episodes-per-candidate",
            "1",
            "--episode-length",
            "30",
            "--num-process",
            "2",
            "--envs-per-worker",
            "2",
            "--eval-every",
            "1",
            "--eval-episodes",
            "2",
        ]
    )
    return home


def holding(directory, what="a test run") -> subprocess.Popen:
    """Another process that holds `directory` until killed (started once it holds it)."""
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time; from worldmodels.files import exclusive_use\n"
            f"with exclusive_use({str(directory)!r}, {what!r}):\n"
            "    print('held', flush=True); time.sleep(600)",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert holder.stdout.readline() == "held\n"
    return holder
