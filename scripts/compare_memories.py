"""The plain and the attentive MDN-RNN trained side by side on the same data and budget.

    python scripts/compare_memories.py --home ~/world-models-experiments --epochs 20 \
        --out memory-comparison

Uses the VAE and the latent statistics of `--home` (linked, not copied) and trains each memory
into its own home under `--out`, with the same episodes held out, the same epochs, batch and
seed; then measures both with `evaluate_memory`. Writes `--out`/memory-comparison.png (train
and validation NLL per epoch, both models) and memory-comparison.md (final validation NLL,
k-step NLL, seconds per epoch), and prints the table.
"""

import argparse
import csv
import json
import time
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from worldmodels import layout
from worldmodels.memory import evaluate_memory, train_memory

KINDS = ("lstm", "attention")


def per_epoch(path: Path) -> dict[int, float]:
    """Mean loss of each epoch in a losses.csv or validation.csv."""
    with open(path, newline="") as file:
        rows = list(csv.DictReader(file))
    epochs = sorted({int(row["epoch"]) for row in rows})
    return {
        e: float(np.mean([float(r["loss"]) for r in rows if int(r["epoch"]) == e])) for e in epochs
    }


def main():
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter
    )
    parser.add_argument("--home", required=True, help="home with a VAE and latent statistics")
    parser.add_argument("--dataset", default="random", help="latent-stats/<dataset> to train on")
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--validation-share", type=float, default=0.1)
    parser.add_argument("--steps", type=int, nargs="+", default=[1, 5, 20], help="k to report")
    parser.add_argument("--out", default="memory-comparison", help="folder for homes and results")
    args = parser.parse_args()
    source, out = layout.resolve_home(args.home), Path(args.out).resolve()

    results = {}
    for kind in KINDS:
        home = out / kind
        for link in (layout.vae_training(home), layout.latent_stats(home, args.dataset)):
            link.parent.mkdir(parents=True, exist_ok=True)
            if not link.exists():
                link.symlink_to(source / link.relative_to(home), target_is_directory=True)
        started = time.monotonic()
        train_memory.main(
            [
                "--home", str(home),
                "--dataset", args.dataset,
                "--memory", kind,
                "--epochs", str(args.epochs),
                "--batch-size", str(args.batch_size),
                "--validation-share", str(args.validation_share),
            ]
        )  # fmt: skip
        seconds = time.monotonic() - started
        evaluate_memory.main(["--home", str(home), "--steps", *map(str, args.steps)])
        run = layout.memory_training(home)
        results[kind] = {
            "train": per_epoch(run / layout.LOSSES),
            "validation": per_epoch(run / layout.VALIDATION),
            "prediction": json.loads((run / f"{layout.PREDICTION}.json").read_text()),
            "seconds_per_epoch": seconds / args.epochs,
        }

    figure = Figure(figsize=(7, 4))
    axes = figure.subplots()
    for kind, result in results.items():
        (line,) = axes.plot(*zip(*result["train"].items()), label=f"{kind}, train")
        axes.plot(*zip(*result["validation"].items()), "--", color=line.get_color(),
                  label=f"{kind}, validation")  # fmt: skip
    axes.set(xlabel="epoch", ylabel="NLL per latent dimension (nats)", title="MDN-RNN")
    axes.legend()
    figure.tight_layout()
    figure.savefig(out / "memory-comparison.png", dpi=100)

    steps = args.steps
    header = (
        "| memory | final validation NLL | "
        + " | ".join(f"{k}-step NLL" for k in steps)
        + " | s per epoch |"
    )
    lines = [header, "|---" * (3 + len(steps)) + "|"]
    for kind, result in results.items():
        prediction = result["prediction"]["mdn_rnn"]["nll"]
        lines.append(
            f"| {kind} | {list(result['validation'].values())[-1]:.3f} | "
            + " | ".join(f"{prediction[str(k)]:.3f}" for k in steps)
            + f" | {result['seconds_per_epoch']:.1f} |"
        )
    baseline = results[KINDS[0]]["prediction"]["no_memory"]["nll"]
    lines.append(
        "| no memory (z_t) | | " + " | ".join(f"{baseline[str(k)]:.3f}" for k in steps) + " | |"
    )
    table = "\n".join(lines)
    (out / "memory-comparison.md").write_text(table + "\n")
    print(table)
    print(f"figure and table in {out}")


if __name__ == "__main__":
    main()
