"""Progress bars: every redraw in a log file is a line, so a log gets few of them."""

import io
import sys
import time

from worldmodels.progress import LOG_INTERVAL_SECONDS, progress


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_a_bar_logging_to_a_file_redraws_at_most_every_interval(monkeypatch):
    log = io.StringIO()
    monkeypatch.setattr(sys, "stderr", log)
    bar = progress(range(250), file=log)
    for step in bar:  # half a second: tqdm's default interval, 0.1 s, would redraw ~5 times
        time.sleep(0.002)
        bar.set_postfix(loss=f"{step}", refresh=False)
    assert bar.mininterval == LOG_INTERVAL_SECONDS
    assert bar.maxinterval >= bar.mininterval  # else tqdm's monitor thread redraws it sooner
    assert log.getvalue().count("\r") <= 2  # its first and its last state


def test_a_bar_on_a_terminal_keeps_tqdms_interval(monkeypatch):
    terminal = Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    assert progress(range(3), file=terminal).mininterval == 0.1
