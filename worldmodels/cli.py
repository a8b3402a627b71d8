"""What every command shares: its parser, the --home flag, checked numeric flags."""

from __future__ import annotations

import argparse
import re

from worldmodels import layout


def make_parser(description: str) -> argparse.ArgumentParser:
    """A parser whose --help shows every flag's default, with the experiments home flag."""
    parser = argparse.ArgumentParser(
        description=description, formatter_class=argparse.ArgumentDefaultsHelpFormatter
    )
    add_home_argument(parser)
    return parser


def add_home_argument(parser: argparse.ArgumentParser) -> None:
    """--home, the experiments home (see worldmodels/layout.py)."""
    parser.add_argument(
        "--home",
        default=None,
        help=f"experiments home; when unset, ${layout.HOME_ENV_VAR}, else {layout.DEFAULT_HOME}",
    )


def add_on_corrupt_argument(parser: argparse.ArgumentParser) -> None:
    """--on-corrupt, for every command that reads episode records."""
    parser.add_argument(
        "--on-corrupt",
        choices=("error", "skip"),
        default="error",
        help="a damaged episode file: stop with its name, or skip it with a warning",
    )


def add_strategy_argument(parser: argparse.ArgumentParser) -> None:
    """--strategy, for the commands that train V and M."""
    parser.add_argument(
        "--strategy",
        choices=("default", "mirrored"),
        default="default",
        help="default: one device; mirrored: tf.distribute.MirroredStrategy, each batch split "
        "over all visible GPUs (the same training, the same checkpoints)",
    )


def share(text: str) -> float:
    """argparse type: a fraction in [0, 1)."""
    value = float(text)
    if not 0 <= value < 1:
        raise argparse.ArgumentTypeError(f"expected a fraction in [0, 1), got {text}")
    return value


def add_validation_arguments(parser: argparse.ArgumentParser, default_share: float) -> None:
    """--validation-share and --validate-every, for the commands that train V and M."""
    parser.add_argument(
        "--validation-share",
        type=share,
        default=default_share,
        help="share of the episodes held out, whole, to measure the loss on; chosen by --seed "
        "when the run starts and kept when it resumes (0: none)",
    )
    parser.add_argument(
        "--validate-every",
        type=non_negative_int,
        default=0,
        help="steps between validation losses, besides the one after every epoch (0: epochs only)",
    )


def positive_int(text: str) -> int:
    """argparse type: an integer >= 1."""
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected an integer >= 1, got {text}")
    return value


def non_negative_int(text: str) -> int:
    """argparse type: an integer >= 0."""
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected an integer >= 0, got {text}")
    return value


def dataset_name(text: str) -> str:
    """argparse type: a dataset's name, which becomes `<home>/<name>-rollouts/`."""
    if not re.fullmatch(r"[a-z0-9]+(-[a-z0-9]+)*", text):
        raise argparse.ArgumentTypeError(
            f"expected lowercase letters and digits in dash-separated words "
            f"(e.g. controller-3), got {text!r}"
        )
    return text


class _DistinctDatasets(argparse.Action):
    def __call__(self, parser, namespace, values, option_string=None):
        if len(set(values)) < len(values):
            parser.error(f"{option_string}: name each dataset once, got {' '.join(values)}")
        setattr(namespace, self.dest, values)


def add_datasets_argument(parser: argparse.ArgumentParser, folder: str) -> None:
    """--dataset NAME [NAME ...] of the commands that train on datasets (`folder`: where one
    lives, as its help says), e.g. on every iteration's episodes at once."""
    parser.add_argument(
        "--dataset",
        nargs="+",
        type=dataset_name,
        default=["random"],
        action=_DistinctDatasets,
        help=f"train on {folder}; several names train on all of their episodes (e.g. "
        "--dataset agent-random controller: every iteration's)",
    )


def add_rollout_arguments(parser: argparse.ArgumentParser) -> None:
    """Flags of every command that runs full-agent rollouts in worker processes."""
    import multiprocessing

    from worldmodels.params import ControllerParams, EnvParams

    env, controller = EnvParams(), ControllerParams()
    parser.add_argument(
        "--num-process",
        "--num_process",
        type=positive_int,
        default=multiprocessing.cpu_count(),
        help="worker processes",
    )
    parser.add_argument(
        "--envs-per-worker",
        type=positive_int,
        default=controller.envs_per_worker,
        help="agent policies: environments each worker steps in lock-step, batching V and M",
    )
    parser.add_argument(
        "--episode-length",
        "--episode_length",
        type=positive_int,
        default=env.episode_length,
        help="steps before an episode is truncated",
    )
    parser.add_argument(
        "--env",
        choices=("fast", "stock"),
        default=env.env,
        help="fast: FastCarRacing (identical observations, ~3x faster); stock: CarRacing-v3",
    )
    parser.add_argument(
        "--timeout",
        type=float,
        default=controller.worker_timeout,
        help="seconds a worker may spend on one job of episodes before it is "
        "killed and the job given to another",
    )
    add_backend_arguments(parser)


def add_backend_arguments(parser: argparse.ArgumentParser) -> None:
    """--backend and --ray-address: where a command's rollout workers run."""
    from worldmodels.workers import BACKENDS

    parser.add_argument(
        "--backend",
        choices=BACKENDS,
        default="local",
        help="local: worker processes on this machine; ray: Ray actors, one CPU each "
        "(pip install -e '.[ray]'), on the instance of --ray-address",
    )
    parser.add_argument(
        "--ray-address",
        default=None,
        help="with --backend ray: 'auto' or host:port joins a running Ray cluster (then "
        "--num-process actors run on it); unset starts a local instance with --num-process CPUs",
    )
