"""Packs a trained agent for shipping: the archive, its checksum and a card of what it scores.

    python scripts/ship_agent.py --home ~/world-models-runs/budget --out pretrained

Writes into --out: `agent.tar.gz` and `agent.tar.gz.sha256` (`pretrained export` of the
generation whose mean scored best during training), the paper's evaluation of that agent on
--episodes tracks never trained on, on stock CarRacing-v3 (`evaluation.json`: every episode's
reward and track; `evaluation.png`: their histogram), `learning-curve.png` (the mean's
evaluations during training against episodes and core-hours, beside the official run's
points), `agent.gif` (one episode: observation | reconstruction | prediction), and `card.md`:
the score, the hours each stage took (from the TensorBoard events and generation summaries the
run wrote), the run's settings and the project version.
"""

import argparse
import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import tensorflow as tf

from worldmodels import __version__, layout, plots
from worldmodels.control import evaluate, render
from worldmodels.control.generations import complete_generations, load_summary
from worldmodels.pretrained import export_agent


def tensorboard_hours(directory: Path) -> float:
    """Wall-clock hours between the first and the last event of a TensorBoard folder."""
    times = [
        event.wall_time
        for path in directory.glob("events.out.tfevents.*")
        for event in tf.compat.v1.train.summary_iterator(str(path))
    ]
    return (max(times) - min(times)) / 3600 if times else float("nan")


def main():
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter
    )
    parser.add_argument("--home", required=True, help="the experiments home of the trained agent")
    parser.add_argument("--out", default="pretrained", help="folder to write")
    parser.add_argument("--episodes", type=int, default=100, help="evaluation episodes")
    parser.add_argument("--num-process", type=int, default=2, help="evaluation workers")
    parser.add_argument("--gif-steps", type=int, default=400, help="steps of the GIF's episode")
    args = parser.parse_args()
    home, out = layout.resolve_home(args.home), Path(args.out).resolve()
    out.mkdir(parents=True, exist_ok=True)

    summaries = [load_summary(home, n) for n in complete_generations(home)]
    scored = [s for s in summaries if "evaluation" in s]
    generation = max(scored, key=lambda s: s["evaluation"]["mean"])["generation"]
    checksum = export_agent(home, generation, out / "agent.tar.gz")

    evaluate.main(
        ["--home", str(home), "--generation", str(generation), "--episodes", str(args.episodes)]
        + ["--env", "stock", "--num-process", str(args.num_process)]
    )
    name = f"generation_{generation}-mean"
    for suffix in (".json", ".png"):
        shutil.copyfile(layout.evaluations(home) / f"{name}{suffix}", out / f"evaluation{suffix}")
    evaluation = json.loads((out / "evaluation.json").read_text())
    render.main(
        ["--home", str(home), "--generation", str(generation), "--env", "stock"]
        + ["--episode-length", str(args.gif_steps), "--scale", "2", "--out", str(out / "agent.gif")]
    )
    plots.plot_learning_curve(home, out / "learning-curve.png")

    control = json.loads(layout.control_run_file(home).read_text())
    hours = {
        "VAE training (wall, all cores)": tensorboard_hours(
            layout.vae_training(home) / layout.TENSORBOARD
        ),
        "MDN-RNN training (wall, all cores)": tensorboard_hours(
            layout.memory_training(home) / layout.TENSORBOARD
        ),
        f"controller training ({len(summaries)} generations, core-hours)": float(
            plots.core_hours(home, summaries)[-1]
        ),
    }
    rewards = np.array(evaluation["rewards"])
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True
    ).stdout.strip()
    card = [
        "# The shipped agent",
        "",
        f"**{rewards.mean():.0f} ± {rewards.std():.0f}** (mean ± std) over {len(rewards)} "
        "episodes of stock `CarRacing-v3`, on tracks training never used "
        f"(`evaluation.json`: every episode's reward and track seed); the distribution mean of "
        f"CMA-ES generation {generation}, the one whose mean scored best during training.",
        "",
        "![one episode](agent.gif)",
        "",
        "| what | hours |",
        "|---|---|",
        *[f"| {what} | {value:.2f} |" for what, value in hours.items()],
        "",
        "![learning curve](learning-curve.png) ![evaluation](evaluation.png)",
        "",
        f"Archive: `agent.tar.gz`, sha256 `{checksum}`. Made by worldmodels {__version__} at "
        f"commit {commit}; the controller run's settings:",
        "",
        "```json",
        json.dumps(control["settings"], indent=2),
        "```",
    ]
    (out / "card.md").write_text("\n".join(card) + "\n")
    print(f"shipped generation {generation}: {rewards.mean():.1f} ± {rewards.std():.1f}; in {out}")


if __name__ == "__main__":
    main()
