"""What every command shares: its parser, the --home flag, checked numeric flags."""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import re
import signal
import sys
from collections.abc import Iterator

from worldmodels import layout
from worldmodels.params import CHECKS


def stop_like_ctrl_c() -> None:
    """`kill -TERM`, and `kill -INT` of a command started in the background (where the shell
    set SIGINT to be ignored), stop it as Ctrl-C does: at a whole point, with its one line,
    rather than where it stands."""
    if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, lambda number, frame: signal.raise_signal(signal.SIGINT))


@contextlib.contextmanager
def ctrl_c_ends_with(message: str) -> Iterator[None]:
    """Within it, Ctrl-C (or kill -TERM: `stop_like_ctrl_c`) ends the command with the one line
    "interrupted: `message`" and exit status 1, no traceback; `message` says what is kept."""
    stop_like_ctrl_c()
    try:
        yield
    except KeyboardInterrupt:
        sys.exit(f"\ninterrupted: {message}")


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


def add_compare_with_argument(parser: argparse.ArgumentParser, says: str) -> None:
    """--compare-with REPORT ...: other agents' evaluation reports, read by
    `records.read_reports`; `says` is what the command does with them."""
    parser.add_argument(
        "--compare-with",
        nargs="+",
        default=[],
        metavar="REPORT",
        help="evaluation reports (evaluate's JSON) of other agents, e.g. the shipped one's "
        f"pretrained/validation.json (its 100 validation tracks, --seed 1): {says}",
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


def checked(check: str, number: type):
    """argparse type: a `number` (int or float) in the range `params.CHECKS[check]` states."""
    test, meaning = CHECKS[check]

    def parse(text: str):
        value = number(text)
        if not test(value):
            raise argparse.ArgumentTypeError(f"expected {meaning}, got {text}")
        return value

    parse.__name__ = number.__name__  # argparse names it in "invalid int value: ..."
    return parse


positive_int = checked("positive", int)
non_negative_int = checked("non_negative", int)
share = checked("fraction", float)


def add_training_arguments(
    parser: argparse.ArgumentParser, checkpoint_every: int, load_model_help: str
) -> None:
    """The flags train_vae and train_memory share besides their settings: --checkpoint-every
    (default `checkpoint_every` steps), --load-model, --validate-every, --strategy and
    --on-corrupt."""
    parser.add_argument(
        "--checkpoint-every",
        type=positive_int,
        default=checkpoint_every,
        help="steps between checkpoints (and at the end of every epoch)",
    )
    parser.add_argument("--load-model", action="store_true", help=load_model_help)
    parser.add_argument(
        "--validate-every",
        type=non_negative_int,
        default=0,
        help="steps between validation losses, besides the one after every epoch (0: epochs only)",
    )
    add_strategy_argument(parser)
    add_on_corrupt_argument(parser)


def add_settings(
    parser: argparse.ArgumentParser,
    params: type,
    *names: str,
    exclude: tuple[str, ...] = (),
    aliases: dict[str, str] | None = None,
) -> None:
    """A flag for each setting `names` of the dataclass `params` (when none are named, each of
    its fields but `exclude`), derived from its field (`worldmodels.params.setting`):
    `--field-name` (with the older spellings it lists, and `aliases`' flag for it), the
    field's type, choices and range check, its default, its doc as help; a bool is a switch.
    The value lands in `args.<field name>`, for `settings_from_args`."""
    fields = {field.name: field for field in dataclasses.fields(params)}
    defaults = params()
    for name in names or [name for name in fields if name not in exclude]:
        field, default = fields[name], getattr(defaults, name)
        metadata = field.metadata
        flags = [f"--{name.replace('_', '-')}", *metadata["aliases"]]
        flags += [aliases[name]] if aliases and name in aliases else []
        if isinstance(default, bool):
            if default:
                raise ValueError(f"setting {name} defaults to True: a switch could not unset it")
            parser.add_argument(*flags, dest=name, action="store_true", help=metadata["doc"])
            continue
        parser.add_argument(
            *flags,
            dest=name,
            type=checked(metadata["check"], type(default)) if metadata["check"] else type(default),
            choices=metadata["choices"],
            default=default,
            help=metadata["doc"],
        )


def settings_from_args(params: type, args: argparse.Namespace, **values):
    """The dataclass `params` with every field that `args` holds (see `add_settings`), then
    `values`; the rest keep their defaults."""
    given = {
        field.name: getattr(args, field.name)
        for field in dataclasses.fields(params)
        if hasattr(args, field.name)
    }
    return params(**{**given, **values})


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
    """Flags of every command that runs full-agent rollouts in worker processes: the
    environment's settings, the workers' (`--timeout` is `worker_timeout`) and where they run."""
    import multiprocessing

    from worldmodels.params import ControllerParams, EnvParams

    parser.add_argument(
        "--num-process",
        "--num_process",
        type=positive_int,
        default=multiprocessing.cpu_count(),
        help="worker processes",
    )
    add_settings(parser, ControllerParams, "envs_per_worker")
    add_settings(parser, EnvParams, "episode_length", "env")
    add_settings(
        parser, ControllerParams, "worker_timeout", aliases={"worker_timeout": "--timeout"}
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
