"""How well each VAE reconstructs each dataset's frames, side by side in one run: is V stale
on the agent's own driving, and does retraining it on 500 of the agent's episodes catch up?

    python scripts/measure_vae_staleness.py --home ~/wm/recipe \
        --vae "iteration 1=~/wm/recipe/controller-2-rollouts/world-model" \
        --vae "iteration 2=~/wm/recipe"

The episodes are those of --home's datasets. Each VAE (--vae: a home, or a sampled dataset's
`world-model/` copy) reads only frames it never
trained on: of a dataset its run trained on, the episodes that run held out for validation; of
a dataset it never saw, the episodes the last --vae's run held out. It encodes every
--frame-stride-th frame of them and decodes mu. Prints, as a Markdown table, the per-pixel
squared error (frames in [0, 1]) as mean ± std over the episodes, a row per VAE and a column
per dataset of the last --vae's run, and each entry's ratio to the VAE's error on the first
dataset. The first agent's iteration-1 V measured so: 0.0021 on its agent's driving against
0.0008 on random frames (docs/history.md).
"""

import argparse
from pathlib import Path

import numpy as np
import tensorflow as tf

from worldmodels import layout
from worldmodels.data.tf_records import load_episode
from worldmodels.images import unit_frames
from worldmodels.training import recorded_episodes
from worldmodels.vision.trained import load_vae


def held_out_by_dataset(vae_home: Path, home: Path) -> dict[str, list[Path]]:
    """The episodes the VAE run of `vae_home` held out for validation, by dataset, for every
    dataset it trained on (in the run's order), found in `home`."""
    run = layout.vae_training(vae_home)
    _, held_out = recorded_episodes(run, lambda dataset: layout.rollouts(home, dataset))
    episodes = {
        dataset: [path for path in held_out if path.parent == layout.rollouts(home, dataset)]
        for dataset in layout.trained_datasets(run)
    }
    missing = [dataset for dataset, paths in episodes.items() if not paths]
    if missing:
        raise SystemExit(f"error: the VAE run in {run} held out no episode of {', '.join(missing)}")
    return episodes


def reconstruction_errors(vae, paths: list[Path], stride: int) -> np.ndarray:
    """Per episode, the mean squared error per pixel of the frames decoded from mu."""
    errors = []
    for path in paths:
        frames = unit_frames(load_episode(path)["observation"][::stride])
        batches = tf.data.Dataset.from_tensor_slices(frames).batch(256)
        squared = [
            tf.reduce_mean((vae.reconstruct(batch) - batch) ** 2, [1, 2, 3]) for batch in batches
        ]
        errors.append(float(tf.reduce_mean(tf.concat(squared, 0))))
    return np.array(errors)


def main():
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter
    )
    parser.add_argument("--home", required=True, help="the home whose datasets' episodes are read")
    parser.add_argument(
        "--vae", action="append", required=True, metavar="LABEL=HOME",
        help="a VAE to measure: a label and the home (or world-model/ copy) holding it",
    )  # fmt: skip
    parser.add_argument("--frame-stride", type=int, default=5, help="every N-th frame is read")
    args = parser.parse_args()
    vaes = dict(entry.split("=", 1) for entry in args.vae)
    homes = {label: Path(home).expanduser() for label, home in vaes.items()}
    episodes_home = Path(args.home).expanduser()
    held_out = {label: held_out_by_dataset(home, episodes_home) for label, home in homes.items()}
    reference = held_out[list(vaes)[-1]]
    datasets = list(reference)
    print("| VAE | " + " | ".join(datasets) + " |")
    print("|---" * (len(datasets) + 1) + "|")
    for label, home in homes.items():
        vae = load_vae(home)
        episodes = {d: held_out[label].get(d, reference[d]) for d in datasets}
        errors = {d: reconstruction_errors(vae, episodes[d], args.frame_stride) for d in datasets}
        first = errors[datasets[0]].mean()
        cells = [
            f"{e.mean():.5f} ± {e.std():.5f} ({e.mean() / first:.2f}×, {len(e)} episodes"
            + ("" if d in held_out[label] else ", never seen")
            + ")"
            for d, e in errors.items()
        ]
        print(f"| {label} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
