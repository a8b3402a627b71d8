"""Progress bars that suit a terminal and a log file alike."""

from __future__ import annotations

import sys

from tqdm import tqdm

# Redraws of a bar whose output is not a terminal (`nohup ... > run.log`): each one appends a
# line, and a bar redrawn every batch grew a 3-hour run's log by a megabyte.
LOG_INTERVAL_SECONDS = 60.0


def progress(*args, **kwargs) -> tqdm:
    """`tqdm(*args, **kwargs)`, redrawn at most every LOG_INTERVAL_SECONDS when stderr is not a
    terminal. Update its postfix with `refresh=False`: a refresh ignores the interval."""
    if not sys.stderr.isatty():
        kwargs.setdefault("mininterval", LOG_INTERVAL_SECONDS)
        # tqdm's monitor thread redraws a bar that has not drawn for `maxinterval` (10 s):
        # below the interval, each slow bar's line came twice.
        kwargs.setdefault("maxinterval", kwargs["mininterval"])
    return tqdm(*args, **kwargs)
