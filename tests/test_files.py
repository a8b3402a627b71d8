"""A directory one process writes at a time (`files.exclusive_use`): a second is refused with
the first's pid, and a killed holder leaves the directory free."""

import os
import signal

import pytest
from conftest import holding

from worldmodels import pipeline
from worldmodels.files import exclusive_use


def test_a_second_process_is_refused_with_the_first_ones_pid_until_it_is_killed(tmp_path):
    holder = holding(tmp_path)
    try:
        with pytest.raises(SystemExit, match=rf"pid {holder.pid} .* is writing x in {tmp_path}"):
            with exclusive_use(tmp_path, "x"):
                pass
    finally:
        os.kill(holder.pid, signal.SIGKILL)  # as the end of a session does: no cleanup ran
        holder.wait()
    with exclusive_use(tmp_path, "x"):  # the kernel released the killed holder's lock
        assert f"pid {os.getpid()} " in (tmp_path / ".lock").read_text()


def test_the_same_process_takes_a_directory_again_once_it_let_it_go(tmp_path):
    for _ in range(2):
        with exclusive_use(tmp_path, "x"):
            pass
    with pytest.raises(RuntimeError), exclusive_use(tmp_path, "x"):
        raise RuntimeError  # an error inside lets it go too
    with exclusive_use(tmp_path, "x"):
        pass


def test_a_second_pipeline_on_a_home_is_refused_before_it_touches_the_record(tmp_path):
    holder = holding(tmp_path, "a recipe run")  # a lock that waited would wait 10 minutes
    try:
        with pytest.raises(SystemExit, match=rf"pid {holder.pid} .* is writing a recipe run"):
            pipeline.main(["--home", str(tmp_path)])
    finally:
        holder.kill()
        holder.wait()
    assert not (tmp_path / "recipe.json").exists()
