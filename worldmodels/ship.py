"""Packs a trained agent for shipping: the archive, its checksum and a card of what it scores.

    python -m worldmodels.ship --home ~/world-models-runs/budget2-it3-mode --out pretrained \
        --generation 249

`python -m worldmodels.pipeline` ends with this step (into `<home>/shipped/`).

Writes into --out: `agent.tar.gz` and `agent.tar.gz.sha256` (`pretrained export` of
--generation: by default the one whose mean scored best during training; better, one chosen on
validation tracks with `evaluate --seed 1`), the paper's evaluation of that agent on
--episodes tracks never trained on, on stock CarRacing-v3 (`evaluation.json`: every episode's
reward and track; `evaluation.png`: their histogram), `learning-curve.png` (the mean's
evaluations during training against episodes and core-hours, beside the official run's
points), `fitness.png` (every generation's best, mean and worst fitness against generations
and core-hours), `agent.gif` (one episode: observation | reconstruction | prediction), and
`card.md`: the score, laps finished, how the generation was chosen (with every validation
evaluation of a generation trained on the same V and M), how it compares with the agents of
`--compare-with` track by track, the hours each stage took, the commands that trained the
agent and the project version.

A stage's hours are what the home records of it: the controller's generation summaries (wall
seconds × rollout workers), the VAE's and MDN-RNN's TensorBoard events (earlier runs that
`--load-model` moved aside included), and for stage 1 and the latent statistics the times
their episode files were written, every dataset's (iteration two samples a second one). Time
between an interrupted command and its resume does not count. Stages 1-4 use every core of
the machine that ran them (`--cores`).

A report `evaluate --env stock` already wrote of the generation on those tracks is used as it is
(evaluation is deterministic) when it read z as the generation was trained to, so deciding to
ship after a test evaluation does not repeat it.
"""

from __future__ import annotations

import argparse
import os

from worldmodels import layout
from worldmodels.cli import add_compare_with_argument, positive_int
from worldmodels.params import EnvParams


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter
    )
    parser.add_argument("--home", required=True, help="the experiments home of the trained agent")
    parser.add_argument(
        "--generation",
        default="best",
        help="the generation whose mean to ship: N, or best (the best evaluation during "
        "training, on few tracks). Choose N on validation tracks (evaluate --seed 1), never on "
        "the test tracks this script evaluates",
    )
    parser.add_argument("--out", default="pretrained", help="folder to write")
    parser.add_argument("--episodes", type=int, default=100, help="evaluation episodes")
    parser.add_argument("--num-process", type=int, default=2, help="evaluation workers")
    parser.add_argument(
        "--episode-length",
        type=positive_int,
        default=EnvParams().episode_length,
        help="steps of each test episode (fewer than the paper's only for tiny tries)",
    )
    parser.add_argument(
        "--gif-steps", type=int, default=240, help="steps of the GIF's episode (240: ~3 MB)"
    )
    parser.add_argument(
        "--cores",
        type=int,
        default=os.cpu_count(),
        help="cores of the machine that ran stages 1-4 (their core-hours: wall hours x cores)",
    )
    parser.add_argument(
        "--note",
        default="",
        help="a paragraph for the card, after the hours: what the home's files do not say "
        "(e.g. that its episodes were resampled on another machine)",
    )
    add_compare_with_argument(
        parser,
        "the card says this agent minus each, paired on its tracks (a validation of this "
        "generation on them, else the test), and whether it is more than two standard errors",
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    # After parsing: --help stays fast.
    from worldmodels.records import read_reports
    from worldmodels.shipping import ship_agent

    others = read_reports(args.compare_with)
    print(
        ship_agent(
            layout.resolve_home(args.home),
            args.out,
            args.generation,
            episodes=args.episodes,
            num_process=args.num_process,
            episode_length=args.episode_length,
            gif_steps=args.gif_steps,
            cores=args.cores,
            note=args.note,
            compare_with=others,
        )
    )


if __name__ == "__main__":
    main()
