"""Damaged episode records, as a user might have them: every command that reads records stops
with one line naming the file and the flag to use, or, with --on-corrupt skip, leaves the file
out and finishes."""

import shutil

import pytest
from conftest import synthetic_episode

from worldmodels import layout
from worldmodels.data import sample_latent_stats
from worldmodels.data.tf_records import episode_filename, list_episodes, save_episode
from worldmodels.memory import train_memory
from worldmodels.vision import train_vae

EPISODES = 5
POSITIONS = {"first": 0, "middle": 2, "last": 4}


def train_vae_on(home, *flags):
    train_vae.main(
        ["--home", str(home), "--epochs", "1", "--batch-size", "16", "--shuffle-buffer", "32"]
        + list(flags)
    )


def encode(home, *flags):
    sample_latent_stats.main(["--home", str(home), *flags])


def train_memory_on(home, *flags):
    train_memory.main(["--home", str(home), "--epochs", "1", "--batch-size", "2", *flags])


# command, the directory of records it reads
COMMANDS = {
    "train_vae": (train_vae_on, lambda home: layout.rollouts(home, "random")),
    "sample_latent_stats": (encode, lambda home: layout.rollouts(home, "random")),
    "train_memory": (train_memory_on, lambda home: layout.latent_stats(home, "random")),
}


@pytest.fixture(scope="module")
def intact_home(tmp_path_factory):
    """5 episodes of 20 steps, a VAE trained on them and their latent statistics."""
    home = tmp_path_factory.mktemp("intact") / "home"
    for index in range(EPISODES):
        save_episode(
            layout.rollouts(home, "random") / episode_filename(index),
            synthetic_episode(20, seed=index),
        )
    train_vae_on(home)
    encode(home)
    return home


def damage(path, kind: str) -> None:
    if kind == "random bytes":
        path.write_bytes(bytes(range(256)) * 8)
    else:  # truncated
        path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def copy_for(command: str, intact_home, tmp_path):
    """A copy of the intact home with the command's own outputs removed, so it reruns."""
    home = tmp_path / "home"
    shutil.copytree(intact_home, home)
    if command == "train_vae":
        shutil.rmtree(layout.vae_training(home))
    if command == "sample_latent_stats":
        shutil.rmtree(layout.latent_stats(home, "random"))
    return home


@pytest.mark.parametrize("position", POSITIONS)
@pytest.mark.parametrize("kind", ["random bytes", "truncated"])
@pytest.mark.parametrize("command", COMMANDS)
def test_a_damaged_record_stops_the_command_with_one_line_naming_it(
    command, kind, position, intact_home, tmp_path
):
    home = copy_for(command, intact_home, tmp_path)
    run, records = COMMANDS[command]
    damaged = list_episodes(records(home))[POSITIONS[position]]
    damage(damaged, kind)
    with pytest.raises(SystemExit) as stopped:
        run(home)
    message = str(stopped.value.code)
    assert message.startswith("error: corrupt or truncated episode record:")
    assert str(damaged) in message and "--on-corrupt skip" in message
    assert "\n" not in message


@pytest.mark.parametrize("command", COMMANDS)
def test_skip_leaves_damaged_records_out_wherever_they_are(command, intact_home, tmp_path, capfd):
    home = copy_for(command, intact_home, tmp_path)
    run, records = COMMANDS[command]
    paths = list_episodes(records(home))
    for position, kind in zip(POSITIONS.values(), ["random bytes", "truncated", "random bytes"]):
        damage(paths[position], kind)
    run(home, "--on-corrupt", "skip")
    warnings = capfd.readouterr().err  # tf.print writes to the stderr file descriptor
    for position in POSITIONS.values():
        assert warnings.count(str(paths[position])) == 1  # once, however many passes meet it
    if command == "sample_latent_stats":
        encoded = [p.name for p in list_episodes(layout.latent_stats(home, "random"))]
        assert encoded == [episode_filename(1), episode_filename(3)]
    else:
        run_directory = (
            layout.vae_training(home) if command == "train_vae" else layout.memory_training(home)
        )
        losses = (run_directory / layout.LOSSES).read_text().splitlines()
        # 2 intact episodes left: 40 frames in batches of 16, or one batch of 2 episodes.
        assert len(losses) - 1 == (3 if command == "train_vae" else 1)
