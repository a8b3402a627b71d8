"""Copies what is expensive to redo of an experiments home into a folder small enough for git.

    python scripts/snapshot_run.py ~/wm-runs/recipe runs/recipe

Writes, in the home's layout: the latest VAE and MDN-RNN weights as weights-only checkpoints
with their run.json, losses.csv, validation.csv, epoch images and TensorBoard events (whose
wall times say how long each stage took), and `control/` whole (every generation, the
latest generation's optimizer state, evaluations, TensorBoard events), and the pipeline's
`recipe.json` and `pipeline-config.json`. Of the runs that --load-model
moved to `previous-runs/` (earlier iterations), everything but their checkpoints. Of each
dataset, its sampling config and when each episode file and its latent statistics were written
(`episode-times.json`), but not the files (hundreds of MB; stage 1 resamples them from their
seeds, the same episodes with the same code; later code may round differently and drive other
trajectories): so that `worldmodels.ship` run on a copy still lists every command and its hours.
Copying the folder into an empty home and rerunning the pipeline's command (or
`train_controller` with the run's flags) resumes the run where the snapshot was taken;
`evaluate`, `render` and `export` work on it as they are.
While V or M trains (a recipe's later iteration), its latest checkpoint is copied whole
instead, with the optimizer's state and the position in the data (~3 times the weights'
size), so that the training resumes where it was; a controller's dataset keeps the V and M it
drove with (`layout.sampling_world_model`), so that its episodes can be sampled again.
The destination is replaced atomically: a snapshot is complete or absent.
"""

import argparse
import json
import os
import shutil
import tempfile
from pathlib import Path

import tensorflow as tf

from worldmodels import layout
from worldmodels.control.generations import complete_generations, controller_spec
from worldmodels.records import read_run
from worldmodels.training import completed_epochs
from worldmodels.world_model import WorldModel, require_trained_models, write_world_model_weights


def main():
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter
    )
    parser.add_argument("home", type=Path, help="the experiments home of the run")
    parser.add_argument("out", type=Path, help="folder to (re)write")
    args = parser.parse_args()
    home = layout.resolve_home(args.home)
    spec = controller_spec(home)
    require_trained_models(home, spec.uses_memory)

    world_model = WorldModel(home, with_memory=spec.uses_memory)
    generations = complete_generations(home)

    out = args.out.resolve()
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}-"))
    write_world_model_weights(home, world_model, staging)
    for run in (layout.vae_training(home), layout.memory_training(home)):
        if run.is_dir() and still_training(run):
            copy_latest_checkpoint(run, staging / run.name)
        for name in (layout.LOSSES, layout.VALIDATION, layout.IMAGES, layout.TENSORBOARD):
            if (run / name).is_file():
                shutil.copyfile(run / name, staging / run.name / name)
            elif (run / name).is_dir():
                shutil.copytree(run / name, staging / run.name / name)
        if (run / layout.PREVIOUS_RUNS).is_dir():
            shutil.copytree(
                run / layout.PREVIOUS_RUNS,
                staging / run.name / layout.PREVIOUS_RUNS,
                ignore=shutil.ignore_patterns(layout.CHECKPOINTS, ".*"),
            )
    for dataset in layout.datasets(home):
        for folder in (layout.rollouts, layout.latent_stats):
            if folder(home, dataset).is_dir():
                folder(staging, dataset).mkdir(parents=True)
                times = layout.episode_write_times(folder(home, dataset))
                (folder(staging, dataset) / layout.EPISODE_TIMES).write_text(json.dumps(times))
        shutil.copyfile(
            layout.sampling_config(home, dataset), layout.sampling_config(staging, dataset)
        )
        if layout.sampling_world_model(home, dataset).is_dir():
            shutil.copytree(
                layout.sampling_world_model(home, dataset),
                layout.sampling_world_model(staging, dataset),
            )
    if generations:
        # One optimizer state resumes CMA-ES: the latest generation's (~12 MB each at full
        # covariance; the home keeps several).
        latest = layout.generation(home, generations[-1])

        def leave_out(folder: str, names: list[str]) -> list[str]:
            hidden = [name for name in names if name.startswith(".")]
            return hidden + (["optimizer.pkl"] if Path(folder) != latest else [])

        shutil.copytree(layout.control(home), staging / layout.CONTROL, ignore=leave_out)
    for record in (layout.recipe_record(home), layout.pipeline_config(home)):
        if record.exists():  # the pipeline's: its steps, decisions and config
            shutil.copyfile(record, staging / record.name)
    if out.exists():
        shutil.rmtree(out)
    os.replace(staging, out)
    size = sum(path.stat().st_size for path in out.rglob("*") if path.is_file())
    print(f"snapshot of {home} in {out} ({size / 2**20:.1f} MiB)")


def still_training(run: Path) -> bool:
    """Whether the latest checkpoint of the training run in `run` has completed fewer epochs
    than its run.json asks for (a weights-only checkpoint, a snapshot's, counts as finished)."""
    epochs = completed_epochs(run)
    section = {layout.VAE_TRAINING: "vae", layout.MEMORY_TRAINING: "memory"}[run.name]
    return epochs is not None and epochs < read_run(run)["config"][section]["epochs"]


def copy_latest_checkpoint(run: Path, destination: Path) -> None:
    """Replaces the checkpoints in `destination` (a run's folder) with the latest of `run`,
    whole, and an index naming it."""
    latest = Path(tf.train.latest_checkpoint(str(run / layout.CHECKPOINTS)))
    checkpoints = destination / layout.CHECKPOINTS
    shutil.rmtree(checkpoints)
    checkpoints.mkdir()
    for path in latest.parent.glob(f"{latest.name}.*"):
        shutil.copyfile(path, checkpoints / path.name)
    (checkpoints / "checkpoint").write_text(f'model_checkpoint_path: "{latest.name}"\n')


if __name__ == "__main__":
    main()
