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
Copying the folder into an empty home and rerunning `train_controller` with the run's flags
resumes the controller run where the snapshot was taken; `evaluate`, `render` and `export`
work on it as they are.
The destination is replaced atomically: a snapshot is complete or absent. While V and M are
being retrained (a recipe's later iteration, before CMA-ES trains on them) it refuses: such a
copy could not resume.
"""

import argparse
import json
import os
import shutil
import tempfile
from pathlib import Path

from worldmodels import layout
from worldmodels.control.generations import complete_generations, controller_spec, trained_on
from worldmodels.training import fingerprint
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
    if generations and not trained_on(
        home, generations[-1], fingerprint(world_model.vae, world_model.memory)
    ):
        # V and M are being retrained (a recipe's next iteration): the copy would hold them
        # half-trained, and its episodes could not be sampled again with the controller.
        raise SystemExit(
            f"error: the V and M in {home} are not the ones generation {generations[-1]} "
            "trained with (retrained since); snapshot once CMA-ES trains on them, and keep "
            "the last snapshot until then"
        )

    out = args.out.resolve()
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}-"))
    write_world_model_weights(home, world_model, staging)
    for run in (layout.vae_training(home), layout.memory_training(home)):
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


if __name__ == "__main__":
    main()
