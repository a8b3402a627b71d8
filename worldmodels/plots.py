"""Training curves as PNG: VAE and MDN-RNN losses per step, CMA-ES fitness per generation.

    python -m worldmodels.plots

Reads the VAE's and the MDN-RNN's `losses.csv` and `validation.csv` (the loss on held-out
episodes, drawn over the training curve) and the generation summaries of the experiments home
(whichever exist) and writes `<home>/plots/*.png`: the losses, the fitness per generation, and
the learning curve (the mean's evaluations against episodes and core-hours, beside the official
run's published points).
"""

from __future__ import annotations

import sys
from pathlib import Path

from worldmodels import layout
from worldmodels.cli import make_parser


def main(argv: list[str] | None = None) -> None:
    parser = make_parser(__doc__.split("\n\n")[0])
    parser.add_argument("--out", default=None, help="folder for the PNGs; default <home>/plots")
    args = parser.parse_args(argv)
    from worldmodels.control.generations import complete_generations  # after parsing: fast --help
    from worldmodels.figures import plot_fitness, plot_learning_curve, plot_losses, read_losses

    home = layout.resolve_home(args.home)
    out = Path(args.out) if args.out else layout.plots(home)
    written = []
    for model, run, names, title in (
        ("vae", layout.vae_training(home), ["loss", "reconstruction_loss", "kl_loss"], "VAE loss"),
        ("memory", layout.memory_training(home), ["loss"], "MDN-RNN negative log-likelihood"),
    ):
        path, validation_path = run / layout.LOSSES, run / layout.VALIDATION
        losses = read_losses(path) if path.exists() else {}
        validation = read_losses(validation_path) if validation_path.exists() else {}
        if losses:
            plot_losses(losses, names, title, out / f"{model}-loss.png", validation)
            written.append(f"{model}-loss.png")
    generations = complete_generations(home)
    # Curves against the episodes and hours spent need the run from its first generation; an
    # installed agent's home holds one generation, which would read as a run of a few minutes.
    partial = bool(generations) and generations[0] != 0
    if generations and not partial:
        plot_fitness(home, out / "controller-fitness.png")
        written.append("controller-fitness.png")
        if plot_learning_curve(home, out / "controller-learning-curve.png"):
            written.append("controller-learning-curve.png")
    elif partial:
        print(
            f"{home} holds generation {generations[0]} on, not its run from generation 0 (an "
            "installed agent): no fitness or learning curve (an agent's card has its run's)"
        )
    if not written:
        sys.exit(f"error: nothing to plot in {home}: no losses.csv and no run of generations")
    print(f"wrote {', '.join(written)} to {out}")


if __name__ == "__main__":
    main()
