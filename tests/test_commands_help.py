"""Every command is installed as a console script and explains every flag with its default."""

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

COMMANDS = {
    "worldmodels-sample-policy": [
        "--policy",
        "--episodes",
        "--episode-length",
        "--num-process",
        "--start-episode",
        "--seed",
        "--brownian-dt",
        "--env",
        "--generation",
    ],
    "worldmodels-train-vae": [
        "--dataset",
        "--epochs",
        "--batch-size",
        "--learning-rate",
        "--kl-tolerance",
        "--checkpoint-every",
        "--load-model",
        "--on-corrupt",
        "--validation-share",
        "--validate-every",
        "--latent",
        "--gumbel-temperature-start",
        "--kl-weight-half-life",
    ],
    "worldmodels-latent-structure": ["--homes", "--episodes", "--max-episodes", "--seed", "--out"],
    "worldmodels-sample-latent-stats": ["--dataset", "--batch-size", "--overwrite", "--on-corrupt"],
    "worldmodels-train-memory": [
        "--dataset",
        "--epochs",
        "--batch-size",
        "--learning-rate",
        "--final-learning-rate",
        "--gradient-clip",
        "--load-model",
        "--memory",
        "--attention-window",
        "--lstm-units",
        "--num-mixtures",
        "--validation-share",
        "--validate-every",
    ],
    "worldmodels-evaluate-memory": ["--steps", "--stride", "--temperature", "--seed"],
    "worldmodels-train-controller": [
        "--generations",
        "--popsize",
        "--episodes-per-candidate",
        "--num-process",
        "--sigma0",
        "--episode-length",
        "--cma-diagonal",
        "--eval-every",
        "--eval-episodes",
        "--seed",
        "--envs-per-worker",
        "--timeout",
        "--env",
        "--controller-inputs",
        "--actions",
    ],
    "worldmodels-evaluate": [
        "--generation",
        "--candidate",
        "--episodes",
        "--seed",
        "--num-process",
    ],
    "worldmodels-pipeline": ["--preset", "--set", "--num-process"],
    "worldmodels-render": [
        "--generation",
        "--candidate",
        "--seed",
        "--out",
        "--temperature",
        "--scale",
        "--fps",
    ],
    "worldmodels-plots": ["--out"],
    "worldmodels-ship": ["--generation", "--out", "--episodes", "--episode-length", "--cores"],
}


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_console_script_help_lists_its_flags_with_defaults(command):
    # Console scripts sit next to the interpreter of the environment they were installed in.
    beside_python = Path(sys.executable).parent / command
    executable = str(beside_python) if beside_python.exists() else shutil.which(command)
    assert executable, f"{command} is not installed; pip install -e ."
    result = subprocess.run([executable, "--help"], capture_output=True, text=True, check=True)
    for flag in ["--home", *COMMANDS[command]]:
        assert flag in result.stdout, flag
    assert result.stdout.count("(default:") >= len(COMMANDS[command])
