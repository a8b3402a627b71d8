"""The continuous and the discrete VAE, and a V-only controller on each, side by side on the
same episodes with the same budgets: the discrete World Models source's study, with our
commands.

    python scripts/compare_latents.py --episodes ~/wm/random-rollouts --vae-epochs 30 \
        --generations 30 --out latent-comparison

Links the episode records into two homes under --out, trains one VAE of each latent type on
them (same held-out episodes, epochs, batch and seed), measures both with `latent_structure`,
then trains the source's V + C agent on each — a controller on z alone with two actions
(steer, throttle) — with the same CMA-ES budget (--popsize x --episodes-per-candidate a
generation, 12 x 8 in the source), and evaluates each controller's mean on --eval-episodes
fresh tracks. Writes --out/latent-comparison.md (the table) and latent-comparison.png (the
fitness curves); the latent structure is in --out/latent-structure.{json,png}.
"""

import argparse
import json
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from worldmodels import layout
from worldmodels.control import evaluate, train_controller
from worldmodels.control.generations import complete_generations, load_summary
from worldmodels.params import LATENTS
from worldmodels.vision import latent_structure, train_vae


def main():
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter
    )
    parser.add_argument(
        "--episodes", required=True, help="folder of episode records both VAEs train on"
    )
    parser.add_argument("--out", default="latent-comparison", help="folder for homes and results")
    parser.add_argument("--vae-epochs", type=int, default=30, help="epochs of each VAE")
    parser.add_argument("--batch-size", type=int, default=256, help="frames per VAE step")
    parser.add_argument(
        "--schedule-half-life",
        type=float,
        default=10.0,
        help="epochs in which the discrete VAE's Gumbel temperature and KL weight halve their "
        "distance to their end values (the source's 10; shorter fits a short run)",
    )
    parser.add_argument("--generations", type=int, default=30, help="CMA-ES generations of each")
    parser.add_argument("--popsize", type=int, default=12, help="CMA-ES candidates a generation")
    parser.add_argument(
        "--episodes-per-candidate", type=int, default=8, help="episodes averaged into a fitness"
    )
    parser.add_argument("--episode-length", type=int, default=1000, help="steps an episode")
    parser.add_argument(
        "--eval-episodes", type=int, default=100, help="fresh tracks each final mean drives"
    )
    parser.add_argument("--num-process", type=int, default=2, help="rollout worker processes")
    args = parser.parse_args()
    episodes, out = Path(args.episodes).expanduser().resolve(), Path(args.out).resolve()
    rollout_flags = [
        "--episode-length", str(args.episode_length),
        "--num-process", str(args.num_process),
    ]  # fmt: skip

    homes = {latent: out / latent for latent in LATENTS}
    for latent, home in homes.items():
        link = layout.rollouts(home, "random")
        link.parent.mkdir(parents=True, exist_ok=True)
        if not link.exists():
            link.symlink_to(episodes, target_is_directory=True)
        half_life = str(args.schedule_half_life)
        train_vae.main(
            ["--home", str(home), "--latent", latent, "--epochs", str(args.vae_epochs)]
            + ["--batch-size", str(args.batch_size)]
            + ["--gumbel-temperature-half-life", half_life, "--kl-weight-half-life", half_life]
        )
    structure = out / "latent-structure"
    latent_structure.main(
        ["--homes", *map(str, homes.values()), "--out", str(structure), "--max-episodes", "50"]
    )
    for home in homes.values():
        train_controller.main(
            ["--home", str(home), "--controller-inputs", "z", "--actions", "2", "--cma-diagonal"]
            + ["--generations", str(args.generations), "--popsize", str(args.popsize)]
            + ["--episodes-per-candidate", str(args.episodes_per_candidate), *rollout_flags]
        )
        evaluate.main(
            ["--home", str(home), "--generation", "max", "--episodes", str(args.eval_episodes)]
            + rollout_flags
        )

    report = json.loads(structure.with_suffix(".json").read_text())["vaes"]
    lines = [
        "| latent | reconstruction MSE | KL ordered (nats) | KL shuffled (nats) "
        "| controller parameters | final mean controller |",
        "|---|---|---|---|---|---|",
    ]
    figure = Figure(figsize=(7, 4))
    axes = figure.subplots()
    for (latent, home), result in zip(homes.items(), report.values()):
        generations = complete_generations(home)
        summaries = [load_summary(home, n) for n in generations]
        (line,) = axes.plot(generations, [s["mean_fitness"] for s in summaries], label=latent)
        axes.plot(generations, [s["best_fitness"] for s in summaries], ":", color=line.get_color())
        final = json.loads(layout.evaluation_file(home, generations[-1]).read_text())
        parameters = np.load(layout.generation(home, generations[-1]) / "mean.npy").size
        lines.append(
            f"| {latent} | {result['reconstruction_error']['mean']:.4f} ± "
            f"{result['reconstruction_error']['std']:.4f} | "
            f"{result['kl_ordered']['mean']:.2f} ± {result['kl_ordered']['std']:.2f} | "
            f"{result['kl_shuffled']['mean']:.2f} ± {result['kl_shuffled']['std']:.2f} | "
            f"{parameters:,} | "
            f"{final['mean']:.1f} ± {final['std']:.1f} over {len(final['rewards'])} episodes |"
        )
    axes.set(xlabel="generation", ylabel="fitness", title="V-only controllers: mean (best dotted)")
    axes.legend()
    figure.tight_layout()
    figure.savefig(out / "latent-comparison.png", dpi=100)
    table = "\n".join(lines)
    (out / "latent-comparison.md").write_text(table + "\n")
    print(table)
    print(f"table, figures and both homes in {out}")


if __name__ == "__main__":
    main()
