"""What every command shares: its parser, the --home flag, checked numeric flags."""

from __future__ import annotations

import argparse

from worldmodels.params import DEFAULT_HOME, HOME_ENV_VAR


def make_parser(description: str) -> argparse.ArgumentParser:
    """A parser whose --help shows every flag's default, with the experiments home flag."""
    parser = argparse.ArgumentParser(
        description=description, formatter_class=argparse.ArgumentDefaultsHelpFormatter
    )
    parser.add_argument(
        "--home",
        default=None,
        help=f"experiments home; when unset, ${HOME_ENV_VAR}, else {DEFAULT_HOME}",
    )
    return parser


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
