"""The experiments home's layout, defined once: commands, `pretrained`, `plots` and the
notebooks ask here for paths instead of joining names themselves.

    <home>/                           --home, else $WORLD_MODELS_HOME, else DEFAULT_HOME
      pipeline-config.json            the pipeline's resolved settings
      recipe.json                     the pipeline's record of its steps and decisions
      shipped/                        the agent the pipeline shipped, with its card
      <dataset>-rollouts/             stage 1: episode-NNNNNN.tfrecord, one per episode
        world-model/                  a controller's dataset: the V and M it drove with
      vae-training/                   stage 2: a training run (below)
      latent-stats/<dataset>/         stage 3: the VAE's encoding of <dataset>-rollouts/
      memory-training/                stage 4: a training run (below)
      control/                        stage 5
        run.json                      the controller run's settings
        tensorboard/                  fitness curves
        generations/generation_N/     one CMA-ES generation (worldmodels/control/generations.py)
        evaluations/                  `evaluate`: generation_N-<candidate>[-zmode][-seedS]
                                      .json and .png
      plots/                          `python -m worldmodels.plots`: PNG curves

    a training run (vae-training/, memory-training/; worldmodels/training.py):
      run.json  checkpoints/  losses.csv  validation.csv  tensorboard/  images/  previous-runs/
      prediction.json, prediction.png   memory-training/ only: `evaluate_memory`'s k-step scores

A snapshot of a run (scripts/snapshot_run.py) keeps, instead of a folder's episode files, when
they were written (`EPISODE_TIMES`), and of the training runs' `previous-runs/` all but the
checkpoints.

A dataset is named after the policy that sampled it (random, brownian, agent-random,
controller) unless `sample_policy --dataset` names it, as a later iteration's episodes must be
(e.g. controller-3 beside iteration two's controller; the pipeline's iteration K samples
controller-K).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

HOME_ENV_VAR = "WORLD_MODELS_HOME"
DEFAULT_HOME = "~/world-models-experiments"


def resolve_home(home: str | os.PathLike | None = None) -> Path:
    """The experiments home: `home` if given, else $WORLD_MODELS_HOME, else the default."""
    chosen = home if home else os.environ.get(HOME_ENV_VAR) or DEFAULT_HOME
    return Path(chosen).expanduser().resolve()


def pipeline_config(home: Path) -> Path:
    return Path(home) / "pipeline-config.json"


def recipe_record(home: Path) -> Path:
    """The pipeline's record of its run: finished steps and their core-hours, each iteration's
    end and why, the generation shipped and why."""
    return Path(home) / "recipe.json"


def shipped(home: Path) -> Path:
    """The agent the pipeline ships: archive, checksum, test evaluation and card."""
    return Path(home) / "shipped"


def agent_dataset(iteration: int) -> str:
    """The dataset the agent samples at the start of recipe iteration `iteration` (from 2)."""
    return f"controller-{iteration}"


ROLLOUTS_SUFFIX = "-rollouts"
# The complete episode files of a rollouts or latent-statistics folder (temporary files of
# atomic writes have other names).
EPISODE_PATTERN = "episode-*.tfrecord"


def rollouts(home: Path, dataset: str) -> Path:
    """Episodes sampled by a policy: `<home>/<dataset>-rollouts`."""
    return Path(home) / f"{dataset}{ROLLOUTS_SUFFIX}"


# When each episode file of a folder was written, for a copy of the folder without its
# episodes (a snapshot of a run keeps this and leaves out the files, hundreds of MB).
EPISODE_TIMES = "episode-times.json"


def episode_write_times(folder: Path) -> list[float]:
    """When the episode files of a rollouts or latent-statistics folder were written (Unix
    seconds, sorted): the files' own times, else those the folder's `EPISODE_TIMES` recorded,
    else none."""
    episodes = list(Path(folder).glob(EPISODE_PATTERN))
    if episodes:
        return sorted(path.stat().st_mtime for path in episodes)
    recorded = Path(folder) / EPISODE_TIMES
    return sorted(json.loads(recorded.read_text())) if recorded.exists() else []


def datasets(home: Path) -> list[str]:
    """The datasets sampled into `home`, in the order their first episodes were written."""
    folders = Path(home).glob(f"*{ROLLOUTS_SUFFIX}")
    names = [folder.name.removesuffix(ROLLOUTS_SUFFIX) for folder in folders]

    def first_written(name: str) -> float:
        return min(episode_write_times(rollouts(home, name)), default=0.0)

    return sorted(
        (name for name in names if sampling_config(home, name).exists()), key=first_written
    )


def sampling_config(home: Path, dataset: str) -> Path:
    """What sampled a dataset's episodes: its command's flags, env and seed scheme."""
    return rollouts(home, dataset) / "sample_policy-config.json"


def sampling_world_model(home: Path, dataset: str) -> Path:
    """The V and M a controller drove with to sample a dataset, weights only, in a home's
    layout (`<dataset>-rollouts/world-model/vae-training/...`): with them its episodes can be
    sampled again, the same ones, after the home's V and M were retrained on them."""
    return rollouts(home, dataset) / "world-model"


def latent_stats(home: Path, dataset: str) -> Path:
    """The VAE's encoding of a dataset's episodes: `<home>/latent-stats/<dataset>`."""
    return Path(home) / "latent-stats" / dataset


VAE_TRAINING = "vae-training"
MEMORY_TRAINING = "memory-training"
CONTROL = "control"
AGENT_PARTS = (VAE_TRAINING, MEMORY_TRAINING, CONTROL)  # an agent, as `pretrained` moves it


def vae_training(home: Path) -> Path:
    return Path(home) / VAE_TRAINING


def memory_training(home: Path) -> Path:
    return Path(home) / MEMORY_TRAINING


# The files of a training run, relative to its directory.
RUN_FILE = "run.json"
CHECKPOINTS = "checkpoints"
LOSSES = "losses.csv"
VALIDATION = "validation.csv"  # the loss on held-out episodes
PREDICTION = "prediction"  # memory-training/prediction.{json,png}: evaluate_memory's scores
TENSORBOARD = "tensorboard"
IMAGES = "images"
PREVIOUS_RUNS = "previous-runs"
# What --load-model moves aside.
RUN_FILES = (RUN_FILE, CHECKPOINTS, LOSSES, VALIDATION, TENSORBOARD, IMAGES)


def recorded_run(directory: Path) -> dict:
    """What the run in `directory` (a training run, or control/) recorded in its run.json:
    "settings", "config", ...; empty when it has none yet."""
    run_file = Path(directory) / RUN_FILE
    return json.loads(run_file.read_text()) if run_file.exists() else {}


def dataset_setting(datasets: list[str]) -> str | list[str]:
    """A V or M run's "dataset" setting for training on `datasets`: the name alone for one, as
    every run recorded before runs could train on several (so those still resume), else the
    list."""
    return datasets[0] if len(datasets) == 1 else list(datasets)


def trained_datasets(run_directory: Path) -> list[str]:
    """The datasets the V or M run in `run_directory` trained on, in the order named."""
    dataset = recorded_run(run_directory)["settings"]["dataset"]
    return [dataset] if isinstance(dataset, str) else dataset


def control(home: Path) -> Path:
    return Path(home) / CONTROL


def control_run_file(home: Path) -> Path:
    return control(home) / RUN_FILE


def control_tensorboard(home: Path) -> Path:
    return control(home) / TENSORBOARD


def generations(home: Path) -> Path:
    return control(home) / "generations"


def generation(home: Path, number: int) -> Path:
    return generations(home) / f"generation_{number}"


def evaluations(home: Path) -> Path:
    return control(home) / "evaluations"


def evaluation_file(
    home: Path,
    generation: int,
    candidate: str = "mean",
    seed: int = 0,
    suffix: str = ".json",
    latent: str | None = None,
) -> Path:
    """`evaluate`'s report (.json) or histogram (.png) of a generation's candidate on the tracks
    of `seed`. Seed 0's tracks (the paper's evaluation, the shipped card's) carry no seed in
    the name; another seed's (e.g. tracks to decide on before spending those) do, so that
    neither overwrites the other. A controller reading z otherwise than it was trained to
    (`latent`, "mode" or "sample": `evaluate --latent`, a diagnostic) has `-z<latent>` after
    the candidate."""
    tracks = f"-seed{seed}" if seed else ""
    reads = f"-z{latent}" if latent else ""
    return evaluations(home) / f"generation_{generation}-{candidate}{reads}{tracks}{suffix}"


def plots(home: Path) -> Path:
    return Path(home) / "plots"
