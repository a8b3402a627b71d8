"""Stages 2-4 end to end in a temporary home, with tiny settings."""

import csv
import json
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf
from conftest import holding, synthetic_episode

from worldmodels.data import sample_latent_stats, sample_policy
from worldmodels.data.tf_records import (
    LATENT_STATS,
    episode_filename,
    list_episodes,
    load_episode,
    load_record,
    save_episode,
    save_record,
)
from worldmodels.memory import train_memory
from worldmodels.memory.memory import build_memory
from worldmodels.memory.memory_training import sequences_for_epoch
from worldmodels.training import completed_epochs, restore_latest_weights
from worldmodels.vision import train_vae
from worldmodels.vision.vae import VAE

EPISODE_LENGTH = 40


def rows(path):
    with open(path, newline="") as file:
        return list(csv.DictReader(file))


@pytest.fixture(scope="module")
def trained_home(tmp_path_factory):
    """A home after stages 1-4: 2 random episodes of 40 steps, one VAE epoch, MDN-RNN epochs."""
    home = tmp_path_factory.mktemp("home")
    flags = ["--home", str(home)]
    sample_policy.main(
        [*flags, "--episodes", "2", "--episode-length", str(EPISODE_LENGTH), "--num-process", "1"]
    )
    # Both episodes train: the validation split has tests of its own.
    train_vae.main(
        [*flags, "--epochs", "1", "--batch-size", "16", "--shuffle-buffer", "64"]
        + ["--validation-share", "0"]
    )
    sample_latent_stats.main(flags)
    train_memory.main([*flags, "--epochs", "2", "--batch-size", "2", "--validation-share", "0"])
    return home


def test_train_vae_writes_checkpoints_losses_images_and_config(trained_home):
    directory = trained_home / "vae-training"
    logged = rows(directory / "losses.csv")
    assert [int(row["step"]) for row in logged] == [1, 2, 3, 4, 5]  # 80 frames / 16
    assert set(logged[0]) == {"step", "epoch", "loss", "reconstruction_loss", "kl_loss", "kl"}
    assert tf.train.latest_checkpoint(str(directory / "checkpoints")).endswith("ckpt-5")
    for kind in ("reconstruction", "samples"):
        assert (directory / "images" / f"epoch-001-{kind}.png").stat().st_size > 0
    assert '"batch_size": 16' in (directory / "run.json").read_text()
    assert list((directory / "tensorboard").glob("events.out.tfevents.*"))


def test_latent_stats_are_the_encoder_outputs_of_each_whole_episode(trained_home):
    vae = VAE()
    vae(tf.zeros((1, 64, 64, 3)))
    restore_latest_weights(trained_home / "vae-training", vae, "train_vae")
    for path in list_episodes(trained_home / "random-rollouts"):
        episode = load_episode(path)
        stats = load_record(trained_home / "latent-stats" / "random" / path.name, LATENT_STATS)
        mu, logvar = vae.encode(episode["observation"].astype(np.float32) / 255.0)
        np.testing.assert_allclose(stats["mu"], mu, atol=1e-5)
        np.testing.assert_allclose(stats["logvar"], logvar, atol=1e-5)
        for name in ("action", "reward", "done"):
            np.testing.assert_array_equal(stats[name], episode[name])
        assert (stats["seed"], stats["policy"]) == (episode["seed"], episode["policy"])


def test_short_episode_next_to_long_one_stays_separate_in_latent_stats(trained_home):
    home = trained_home
    lengths = {0: 5, 1: 40}
    for index, length in lengths.items():
        save_episode(
            home / "brownian-rollouts" / episode_filename(index), synthetic_episode(length, index)
        )
    sample_latent_stats.main(["--home", str(home), "--dataset", "brownian", "--batch-size", "16"])
    for index, length in lengths.items():
        stats = load_record(
            home / "latent-stats" / "brownian" / episode_filename(index), LATENT_STATS
        )
        assert stats["mu"].shape == (length, 32)
        np.testing.assert_array_equal(stats["action"], synthetic_episode(length, index)["action"])


def test_memory_batches_pad_and_mask_short_episodes_without_mixing(tmp_path):
    rng = np.random.default_rng(0)
    mus, actions = {}, {}
    rewards = {}
    for index, length in enumerate((5, 40)):
        mus[index] = rng.normal(size=(length, 32)).astype(np.float32)
        actions[index] = rng.uniform(size=(length, 3)).astype(np.float32)
        rewards[index] = rng.normal(size=length).astype(np.float32)
        stats = {
            "mu": mus[index],
            "logvar": np.full((length, 32), -60.0, np.float32),  # z == mu to float precision
            "action": actions[index],
            "reward": rewards[index],
            "done": np.arange(length) == length - 1,
            "seed": index,
            "policy": "random",
        }
        save_record(tmp_path / episode_filename(index), stats, LATENT_STATS)
    ((inputs, targets, mask, reward, done, step_mask),) = list(
        sequences_for_epoch(list_episodes(tmp_path), 2, 0, "error")
    )
    assert inputs.shape == (2, 40, 35) and targets.shape == (2, 40, 32)
    for row in range(2):
        length = int(step_mask[row].numpy().sum())
        index = 0 if length == 5 else 1
        # Input t is (z_t, a_t): the action taken on z_t, not the one after it; every step of
        # the episode is an input, the last one included (its reward and done flag count).
        np.testing.assert_allclose(inputs[row, :length, :32], mus[index], atol=1e-6)
        np.testing.assert_array_equal(inputs[row, :length, 32:], actions[index])
        np.testing.assert_array_equal(reward[row, :length], rewards[index])
        np.testing.assert_array_equal(done[row, :length], np.arange(length) == length - 1)
        # The target of step t is z_{t+1}: there is none for the last step.
        np.testing.assert_allclose(targets[row, : length - 1], mus[index][1:], atol=1e-6)
        np.testing.assert_array_equal(mask[row], np.arange(40) < length - 1)
        assert np.all(inputs[row, length:].numpy() == 0)
        assert np.all(step_mask[row, length:].numpy() == 0)
    assert sorted(int(m) for m in step_mask.numpy().sum(1)) == [5, 40]


@pytest.mark.parametrize("ensemble", [1, 3])
def test_reward_and_done_heads_train_and_log_their_losses(trained_home, tmp_path, ensemble):
    from worldmodels.world_model import build_world_model

    home = tmp_path / "home"
    shutil.copytree(trained_home, home)
    flags = ["--home", str(home), "--epochs", "1", "--batch-size", "2", "--validation-share", "0.5"]
    flags += ["--reward-done-ensemble", str(ensemble)]
    with pytest.raises(SystemExit, match="reward_done_heads: False -> True"):
        train_memory.main([*flags, "--reward-done-heads"])
    # M without heads, loaded into one with them: its LSTM and mixture, the heads new.
    train_memory.main([*flags, "--reward-done-heads", "--load-model"])
    logged = rows(home / "memory-training" / "losses.csv")
    validated = rows(home / "memory-training" / "validation.csv")
    for row in logged[-1], validated[-1]:
        parts = float(row["nll"]) + float(row["reward_loss"]) + float(row["done_loss"])
        assert float(row["loss"]) == pytest.approx(parts, rel=1e-5)
    _, memory = build_world_model(home)  # every later stage builds M with its heads
    assert memory.reward_done_heads and memory.reward_done.built
    assert memory.reward_done_ensemble == ensemble


def test_heads_trained_alone_leave_the_rest_of_m_as_it_was(trained_home, tmp_path):
    home = tmp_path / "home"
    shutil.copytree(trained_home, home)
    flags = ["--home", str(home), "--epochs", "3", "--batch-size", "2", "--validation-share", "0"]
    flags += ["--reward-done-heads", "--train-heads-only"]
    with pytest.raises(SystemExit, match="add --reward-done-heads and --load-model"):
        train_memory.main(flags)
    train_memory.main([*flags, "--load-model"])

    def weights(checkpoint: Path, heads: bool) -> dict:  # M's weights there, by part
        memory = build_memory(reward_done_heads=heads)
        memory(tf.zeros((1, 2, memory.latent_dim + 3)))
        tf.train.Checkpoint(model=memory).restore(str(checkpoint)).expect_partial()
        parts = ("lstm", "mdn", "reward_done") if heads else ("lstm", "mdn")
        return {
            f"{part}/{index}": variable.numpy()
            for part in parts
            for index, variable in enumerate(getattr(memory, part).weights)
        }

    training = home / "memory-training"
    old_run = training / "previous-runs" / "run-0" / "checkpoints"
    loaded = weights(tf.train.latest_checkpoint(str(old_run)), heads=False)
    # The first and the last checkpoint of the heads' 3 steps (one an epoch).
    first, last = (weights(training / "checkpoints" / f"ckpt-{n}", heads=True) for n in (1, 3))
    heads = first.keys() - loaded.keys()
    assert heads and all(path.startswith("reward_done/") for path in heads)
    for path in loaded:  # the LSTM and the mixture: the loaded M's, bit for bit
        np.testing.assert_array_equal(last[path], loaded[path])
    assert all(not np.array_equal(first[path], last[path]) for path in heads)


def test_an_mdn_rnn_run_recorded_before_the_heads_existed_resumes(trained_home, tmp_path, capsys):
    home = tmp_path / "home"
    shutil.copytree(trained_home, home)
    run_file = home / "memory-training" / "run.json"
    run = json.loads(run_file.read_text())
    settings = run["settings"]
    del run["schema"], settings["reward_done_heads"]  # a record of schema 1, before the heads
    del settings["reward_overprediction_weight"], settings["reward_done_ensemble"]  # remedies
    run_file.write_text(json.dumps(run))
    steps = len(rows(home / "memory-training" / "losses.csv"))
    train_memory.main(
        ["--home", str(home), "--epochs", str(run["config"]["memory"]["epochs"] + 1)]
        + ["--batch-size", str(settings["batch_size"])]
        + ["--validation-share", str(settings["validation_share"])]
    )
    assert "resumed" in capsys.readouterr().out
    assert len(rows(home / "memory-training" / "losses.csv")) > steps


def test_completed_epochs_reads_a_runs_checkpoint_and_none_from_weights_only(
    trained_home, tmp_path
):
    assert completed_epochs(trained_home / "vae-training") == 1
    assert completed_epochs(trained_home / "memory-training") == 2
    vae = VAE()
    vae(tf.zeros((1, 64, 64, 3)))
    restore_latest_weights(trained_home / "vae-training", vae, "train_vae")
    tf.train.Checkpoint(model=vae).save(str(tmp_path / "checkpoints" / "ckpt"))
    assert completed_epochs(tmp_path) is None


def test_train_memory_decays_the_learning_rate_and_logs_each_step(trained_home):
    logged = rows(trained_home / "memory-training" / "losses.csv")
    assert [int(row["step"]) for row in logged] == [1, 2]
    assert float(logged[0]["learning_rate"]) == pytest.approx(1e-3)
    assert float(logged[1]["learning_rate"]) == pytest.approx(1e-3 + (1e-5 - 1e-3) / 2)


def test_changed_settings_are_refused_and_load_model_starts_a_new_run(trained_home, capsys):
    flags = ["--home", str(trained_home), "--epochs", "1", "--validation-share", "0"]
    with pytest.raises(SystemExit, match="batch_size: 2 -> 3"):
        train_memory.main([*flags, "--batch-size", "3"])
    train_memory.main([*flags, "--batch-size", "3", "--load-model"])
    assert "new run from the weights of" in capsys.readouterr().out
    directory = trained_home / "memory-training"
    assert len(rows(directory / "losses.csv")) == 1
    assert len(rows(directory / "previous-runs" / "run-0" / "losses.csv")) == 2


def test_rerunning_a_load_model_command_resumes_the_run_it_started(trained_home, tmp_path, capsys):
    home = tmp_path / "home"
    shutil.copytree(trained_home, home)
    directory = home / "memory-training"
    flags = ["--home", str(home), "--batch-size", "2", "--validation-share", "0.5", "--load-model"]
    first_run = Path(tf.train.latest_checkpoint(directory / "checkpoints"))
    archived = len(list((directory / "previous-runs").glob("run-*")))
    train_memory.main([*flags, "--epochs", "1"])
    loaded_from = Path(json.loads((directory / "run.json").read_text())["loaded_from"])
    first_archive = directory / "previous-runs" / f"run-{archived}"
    assert loaded_from == first_archive / "checkpoints" / first_run.name
    assert loaded_from.with_suffix(".index").exists()
    split = json.loads((directory / "run.json").read_text())["validation_episodes"]

    # The same command, interrupted after its first epoch and run again, resumes the run.
    train_memory.main([*flags, "--epochs", "2"])
    resumed = f"resumed from {directory / 'checkpoints' / 'ckpt-1'} at epoch 2"
    assert resumed in capsys.readouterr().out
    assert [row["epoch"] for row in rows(directory / "losses.csv")] == ["1", "2"]
    assert json.loads((directory / "run.json").read_text())["validation_episodes"] == split
    # Finished, it has nothing left to do.
    train_memory.main([*flags, "--epochs", "2"])
    assert "at epoch 3" in capsys.readouterr().out
    assert len(rows(directory / "losses.csv")) == 2
    assert not (directory / "previous-runs" / f"run-{archived + 1}").exists()

    # Other settings: --load-model starts a new run from its weights, as the first time.
    train_memory.main([*flags, "--epochs", "1", "--batch-size", "3"])
    assert "new run from the weights of" in capsys.readouterr().out
    assert len(rows(directory / "previous-runs" / f"run-{archived + 1}" / "losses.csv")) == 2


def test_a_load_model_run_stopped_before_its_first_checkpoint_starts_again_from_its_weights(
    trained_home, tmp_path, capsys
):
    flags = ["--batch-size", "2", "--validation-share", "0.5", "--load-model", "--epochs", "1"]
    trained = []
    for stopped_early in (False, True):
        home = tmp_path / f"home-{stopped_early}"
        shutil.copytree(trained_home, home)
        directory = home / "memory-training"
        train_memory.main(["--home", str(home), *flags])
        if stopped_early:  # as a run killed before its first checkpoint leaves it
            shutil.rmtree(directory / "checkpoints")
            train_memory.main(["--home", str(home), *flags])
            assert "(started again)" in capsys.readouterr().out
        reader = tf.train.load_checkpoint(str(directory / "checkpoints"))
        names = [name for name in reader.get_variable_to_shape_map() if name.startswith("model")]
        trained.append({name: reader.get_tensor(name) for name in names})
    uninterrupted, started_again = trained
    assert uninterrupted.keys() == started_again.keys() and uninterrupted
    for name, value in uninterrupted.items():  # not from random weights
        np.testing.assert_allclose(started_again[name], value, rtol=1e-5, atol=1e-6, err_msg=name)


def test_a_training_run_another_process_writes_is_refused(trained_home, tmp_path):
    home = tmp_path / "home"
    shutil.copytree(trained_home, home)
    for command, run in ((train_vae, "vae-training"), (train_memory, "memory-training")):
        holder = holding(home / run)
        try:
            with pytest.raises(SystemExit, match=rf"pid {holder.pid} .* is writing"):
                command.main(["--home", str(home), "--epochs", "9"])
        finally:
            holder.kill()
            holder.wait()
        assert json.loads((home / run / "run.json").read_text()) == json.loads(
            (trained_home / run / "run.json").read_text()
        )  # refused before it wrote anything


def test_latent_stats_of_another_vae_need_overwrite(trained_home):
    home = str(trained_home)
    train_vae.main(
        ["--home", home, "--epochs", "2", "--batch-size", "16", "--shuffle-buffer", "64"]
        + ["--validation-share", "0"]
    )
    for command in (
        lambda: sample_latent_stats.main(["--home", home]),
        lambda: train_memory.main(["--home", home, "--epochs", "1", "--load-model"]),
    ):
        with pytest.raises(SystemExit, match="another VAE .* than the latest.*--overwrite"):
            command()
    sample_latent_stats.main(["--home", home, "--overwrite"])
    assert len(list_episodes(trained_home / "latent-stats" / "random")) == 2
    # The MDN-RNN trained on the first VAE's latents does not resume on the second's.
    flags = ["--home", home, "--epochs", "1", "--batch-size", "2"]
    with pytest.raises(SystemExit, match="latent_stats_vae: '[0-9a-f]{16}' -> '[0-9a-f]{16}'"):
        train_memory.main(flags)
    train_memory.main([*flags, "--load-model"])


def test_latent_stats_of_the_older_format_are_refused_until_encoded_again(trained_home, tmp_path):
    """Statistics written before they carried rewards and done flags (format 1: no "format" in
    encoded-with.json, records of mu, logvar and action only)."""
    from worldmodels.data.tf_records import RecordFormat

    home = tmp_path / "home"
    shutil.copytree(trained_home, home)
    stats = home / "latent-stats" / "random"
    provenance = json.loads((stats / "encoded-with.json").read_text())
    (stats / "encoded-with.json").write_text(
        json.dumps({"vae_checkpoint": provenance["vae_checkpoint"]})
    )
    old_format = RecordFormat(
        {name: LATENT_STATS.arrays[name] for name in ("mu", "logvar", "action")}
    )
    for path in list_episodes(stats):
        save_record(path, load_record(path, LATENT_STATS), old_format)

    for command in (
        lambda: train_memory.main(["--home", str(home), "--epochs", "3"]),
        lambda: sample_latent_stats.main(["--home", str(home)]),
    ):
        with pytest.raises(SystemExit, match="older format.*--overwrite"):
            command()
    sample_latent_stats.main(["--home", str(home), "--overwrite"])
    for path in list_episodes(stats):
        episode = load_episode(home / "random-rollouts" / path.name)
        np.testing.assert_array_equal(load_record(path, LATENT_STATS)["done"], episode["done"])
    train_memory.main(["--home", str(home), "--epochs", "1", "--batch-size", "2", "--load-model"])
    assert len(rows(home / "memory-training" / "losses.csv")) == 1


# Enough epochs that a kill after the third checkpoint lands mid-run on a slow machine.
MEMORY_EPOCHS = 16


def memory_command(home, *flags):
    return [
        sys.executable,
        "-m",
        "worldmodels.memory.train_memory",
        "--home",
        str(home),
        "--epochs",
        str(MEMORY_EPOCHS),
        "--batch-size",
        "1",
        "--checkpoint-every",
        "1",
        *flags,
    ]


def test_killed_memory_training_resumes_exactly_where_it_stopped(trained_home, tmp_path):
    for name in ("interrupted", "uninterrupted"):
        shutil.copytree(trained_home / "latent-stats", tmp_path / name / "latent-stats")
    killed = subprocess.Popen(memory_command(tmp_path / "interrupted"), stderr=subprocess.DEVNULL)
    checkpoints = tmp_path / "interrupted" / "memory-training" / "checkpoints"
    deadline = time.time() + 120
    while time.time() < deadline and len(list(checkpoints.glob("ckpt-*.index"))) < 3:
        time.sleep(0.02)
    killed.send_signal(signal.SIGKILL)
    assert killed.wait() == -signal.SIGKILL
    assert len(rows(tmp_path / "interrupted" / "memory-training" / "losses.csv")) < MEMORY_EPOCHS

    resumed = subprocess.run(
        memory_command(tmp_path / "interrupted"), capture_output=True, text=True
    )
    assert resumed.returncode == 0, resumed.stderr
    assert "resumed from" in resumed.stdout
    subprocess.run(memory_command(tmp_path / "uninterrupted"), check=True, capture_output=True)

    interrupted = rows(tmp_path / "interrupted" / "memory-training" / "losses.csv")
    uninterrupted = rows(tmp_path / "uninterrupted" / "memory-training" / "losses.csv")
    # One episode of the two is held out: epochs of one step, each followed by validation.
    assert [int(r["step"]) for r in interrupted] == list(range(1, MEMORY_EPOCHS + 1))
    validation = [
        rows(tmp_path / name / "memory-training" / "validation.csv")
        for name in ("interrupted", "uninterrupted")
    ]
    assert [int(r["step"]) for r in validation[0]] == list(range(1, MEMORY_EPOCHS + 1))
    np.testing.assert_allclose(
        [float(r["loss"]) for r in validation[0]],
        [float(r["loss"]) for r in validation[1]],
        rtol=1e-5,
    )
    np.testing.assert_allclose(
        [float(r["loss"]) for r in interrupted],
        [float(r["loss"]) for r in uninterrupted],
        rtol=1e-5,
    )


def test_held_out_episodes_are_whole_disjoint_and_drawn_by_the_seed():
    from worldmodels.training import held_out_episodes

    paths = [Path(episode_filename(i)) for i in range(100)]
    held = held_out_episodes(paths, 0.05, seed=3)
    assert len(held) == 5 and len(set(held)) == 5 and set(held) <= set(paths)
    assert held == held_out_episodes(paths, 0.05, seed=3)
    assert held != held_out_episodes(paths, 0.05, seed=4)
    assert len(held_out_episodes(paths[:4], 0.05, seed=0)) == 1  # at least one
    assert held_out_episodes(paths[:1], 0.5, seed=0) == []  # never every episode
    assert held_out_episodes(paths, 0.0, seed=0) == []


def test_a_run_keeps_its_validation_split_when_resumed_on_a_grown_dataset(tmp_path):
    from worldmodels.training import split_episodes

    paths = [tmp_path / episode_filename(i) for i in range(20)]
    training, validation = split_episodes(tmp_path / "run", paths, 0.25, seed=0, new_run=False)
    assert len(validation) == 5 and not set(training) & set(validation)
    assert sorted(training + validation) == paths
    (tmp_path / "run").mkdir()
    names = [p.name for p in validation]
    (tmp_path / "run" / "run.json").write_text(json.dumps({"validation_episodes": names}))
    grown = paths + [tmp_path / episode_filename(i) for i in range(20, 40)]
    kept_training, kept = split_episodes(tmp_path / "run", grown, 0.25, seed=7, new_run=False)
    assert kept == validation and len(kept_training) == 35  # new episodes all train
    _, redrawn = split_episodes(tmp_path / "run", grown, 0.25, seed=7, new_run=True)
    assert len(redrawn) == 10


def test_validation_loss_is_the_nll_of_the_held_out_episodes(trained_home, tmp_path):
    from worldmodels.memory.memory import MDNRNN, mdn_loss
    from worldmodels.seeds import Model, Stream, derive_seed

    home = tmp_path / "home"
    shutil.copytree(trained_home, home)
    shutil.rmtree(home / "memory-training")
    train_memory.main(
        ["--home", str(home), "--epochs", "2", "--batch-size", "1", "--validation-share", "0.5"]
    )
    run = json.loads((home / "memory-training" / "run.json").read_text())
    (held_out,) = run["validation_episodes"]
    rows_ = rows(home / "memory-training" / "validation.csv")
    assert [int(row["epoch"]) for row in rows_] == [1, 2]
    assert len(rows(home / "memory-training" / "losses.csv")) == 2  # one training episode

    memory = MDNRNN()
    memory(tf.zeros((1, 2, 35)))
    restore_latest_weights(home / "memory-training", memory, "train_memory")
    seed = derive_seed(0, Stream.VALIDATION, Model.MEMORY)
    ((inputs, targets, mask, *_),) = list(
        sequences_for_epoch([home / "latent-stats" / held_out], 1, seed, "error")
    )
    (logit_pi, mu, log_sigma), _ = memory(inputs)
    expected = float(mdn_loss(logit_pi, mu, log_sigma, targets, mask))
    assert float(rows_[-1]["loss"]) == pytest.approx(expected, rel=1e-5)


def test_validate_every_adds_validation_between_epochs(trained_home, tmp_path):
    home = tmp_path / "home"
    shutil.copytree(trained_home, home)
    shutil.rmtree(home / "vae-training")
    train_vae.main(
        ["--home", str(home), "--epochs", "2", "--batch-size", "8", "--shuffle-buffer", "32"]
        + ["--validation-share", "0.5", "--validate-every", "2"]
    )
    steps = [int(r["step"]) for r in rows(home / "vae-training" / "losses.csv")]
    validated = [int(r["step"]) for r in rows(home / "vae-training" / "validation.csv")]
    # 40 training frames in batches of 8: 5 steps an epoch. Every 2 steps, and after each
    # epoch, never twice at one step.
    assert steps == list(range(1, 11))
    assert validated == [2, 4, 5, 6, 8, 10]
    # Burda et al.'s active units, counted on the held-out frames at each validation.
    active = [float(r["active_dimensions"]) for r in rows(home / "vae-training" / "validation.csv")]
    assert all(count.is_integer() and 0 <= count <= 32 for count in active)


def test_ctrl_c_ends_training_with_one_line_and_a_checkpoint_of_the_last_batch(
    trained_home, tmp_path
):
    shutil.copytree(trained_home / "latent-stats", tmp_path / "latent-stats")
    command = memory_command(tmp_path)
    interrupted = subprocess.Popen(command, stderr=subprocess.PIPE, text=True)
    losses = tmp_path / "memory-training" / "losses.csv"
    deadline = time.time() + 120
    while time.time() < deadline and (not losses.exists() or len(rows(losses)) < 2):
        time.sleep(0.02)
    interrupted.send_signal(signal.SIGINT)
    stderr = interrupted.communicate()[1]
    assert interrupted.returncode == 1
    assert "Traceback" not in stderr and "KeyboardInterrupt" not in stderr
    last_line = stderr.strip().splitlines()[-1]
    assert last_line.startswith("interrupted: epoch") and "rerun the same command" in last_line
    # Nothing trained is lost: the checkpoint is of the last step logged.
    checkpoints = tmp_path / "memory-training" / "checkpoints"
    newest = max(int(path.stem.split("-")[1]) for path in checkpoints.glob("ckpt-*.index"))
    assert newest == len(rows(losses)) < MEMORY_EPOCHS

    resumed = subprocess.run(command, capture_output=True, text=True)
    assert resumed.returncode == 0, resumed.stderr
    assert [int(r["step"]) for r in rows(losses)] == list(range(1, MEMORY_EPOCHS + 1))
