"""pretrained.sh and export round trip over HTTP on 127.0.0.1, and every way it must fail safely."""

import functools
import hashlib
import http.server
import importlib.util
import io
import json
import os
import shlex
import shutil
import subprocess
import sys
import tarfile
import threading
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

from worldmodels import layout, shipping
from worldmodels.agent_archive import export_agent
from worldmodels.control import evaluate

REPO = Path(__file__).resolve().parent.parent


def snapshot(home: Path) -> dict:
    return {
        str(p.relative_to(home)): p.read_bytes() for p in sorted(home.rglob("*")) if p.is_file()
    }


@pytest.fixture(scope="module")
def served(trained_controller_home, tmp_path_factory):
    """An exported agent and variants of it, served over HTTP; yields (base URL, folder)."""
    folder = tmp_path_factory.mktemp("served")
    checksum = export_agent(trained_controller_home, 1, folder / "agent.tar.gz")
    data = (folder / "agent.tar.gz").read_bytes()
    (folder / "truncated.tar.gz").write_bytes(data[: len(data) // 2])
    (folder / "truncated.tar.gz.sha256").write_text(
        hashlib.sha256(data[: len(data) // 2]).hexdigest() + "  truncated.tar.gz\n"
    )
    (folder / "wrong.tar.gz").write_bytes(data)
    (folder / "wrong.tar.gz.sha256").write_text("0" * 64 + "  wrong.tar.gz\n")
    escaping = io.BytesIO()
    with tarfile.open(fileobj=escaping, mode="w:gz") as archive:
        for name in ("control/generations/generation_0/complete", "../outside.txt"):
            info = tarfile.TarInfo(name)
            archive.addfile(info, io.BytesIO(b""))
    (folder / "escaping.tar.gz").write_bytes(escaping.getvalue())
    (folder / "escaping.tar.gz.sha256").write_text(
        hashlib.sha256(escaping.getvalue()).hexdigest() + "  escaping.tar.gz\n"
    )
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(folder))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}", folder, checksum
    server.shutdown()


def pretrained_sh(*args, script=REPO / "pretrained.sh"):
    # The script runs `python`: the one of the environment running the tests.
    path = f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"
    return subprocess.run(
        ["bash", str(script), *args],
        capture_output=True,
        text=True,
        env={**os.environ, "PATH": path},
    )


def test_round_trip_installs_an_agent_that_evaluate_can_run(served, tmp_path, capsys):
    url, _, checksum = served
    home = tmp_path / "home"
    result = pretrained_sh(f"{url}/agent.tar.gz", "--home", str(home))
    assert result.returncode == 0, result.stderr
    assert "installed" in result.stdout
    assert (home / "control" / "generations" / "generation_1" / "complete").exists()
    assert len(list((home / "vae-training" / "checkpoints").glob("ckpt-*.index"))) == 1

    # The command the install suggests, as printed (it names the home installed into).
    suggested = shlex.split(result.stdout.split("try: ")[1])
    assert suggested[:3] == ["python", "-m", "worldmodels.control.evaluate"]
    evaluate.main(
        suggested[3:] + ["--episodes", "2", "--episode-length", "20"]
        + ["--num-process", "1", "--envs-per-worker", "2"]
    )  # fmt: skip
    assert "generation 1 (mean)" in capsys.readouterr().out
    assert checksum == hashlib.sha256((served[1] / "agent.tar.gz").read_bytes()).hexdigest()


@pytest.mark.parametrize(
    "archive, message",
    [
        ("wrong.tar.gz", "checksum mismatch"),
        ("truncated.tar.gz", "not a readable agent archive"),
        ("escaping.tar.gz", "refusing archive member '../outside.txt'"),
        ("missing.tar.gz", "could not download"),
    ],
)
def test_bad_archives_fail_clearly_and_leave_the_home_unchanged(served, tmp_path, archive, message):
    url = served[0]
    home = tmp_path / "home"
    (home / "random-rollouts").mkdir(parents=True)
    (home / "random-rollouts" / "keep.txt").write_text("mine")
    before = snapshot(home)
    result = pretrained_sh(f"{url}/{archive}", "--home", str(home))
    assert result.returncode != 0
    assert message in result.stderr and "is unchanged" in result.stderr
    assert snapshot(home) == before
    assert not (tmp_path / "outside.txt").exists()
    assert [p.name for p in home.iterdir()] == ["random-rollouts"]


def test_unreachable_host_fails_clearly(tmp_path):
    result = pretrained_sh("http://127.0.0.1:9/agent.tar.gz", "--home", str(tmp_path / "home"))
    assert result.returncode != 0 and "could not download" in result.stderr


def test_without_a_source_or_a_shipped_agent_it_says_what_to_pass(tmp_path):
    repository = tmp_path / "repository"
    repository.mkdir()
    shutil.copyfile(REPO / "pretrained.sh", repository / "pretrained.sh")
    result = pretrained_sh("--home", str(tmp_path / "home"), script=repository / "pretrained.sh")
    assert result.returncode != 0 and "no agent archive given" in result.stderr
    assert not (tmp_path / "home" / "control").exists()


def test_installing_over_an_existing_agent_is_refused(served, tmp_path):
    url = served[0]
    home = tmp_path / "home"
    assert pretrained_sh(f"{url}/agent.tar.gz", "--home", str(home)).returncode == 0
    before = snapshot(home)
    result = pretrained_sh(f"{url}/agent.tar.gz", "--home", str(home))
    assert result.returncode != 0 and "exists already" in result.stderr
    assert snapshot(home) == before


def test_a_snapshot_of_a_run_resumes_its_controller_training_in_a_fresh_home(
    trained_controller_home, tmp_path
):
    original = tmp_path / "original"
    shutil.copytree(trained_controller_home, original)
    # An earlier iteration's VAE run, as --load-model moves it aside.
    previous = layout.vae_training(original) / "previous-runs" / "run-0"
    shutil.copytree(layout.vae_training(original), previous)
    snapshot = tmp_path / "snapshot"
    subprocess.run(
        [sys.executable, str(REPO / "scripts" / "snapshot_run.py"), str(original), str(snapshot)],
        check=True,
        capture_output=True,
    )
    assert not list(snapshot.rglob("*.tfrecord"))  # no episodes, no latent statistics
    assert not (snapshot / previous.relative_to(original) / "checkpoints").exists()
    home = tmp_path / "fresh"
    shutil.copytree(snapshot, home)
    # What the card reads survives the copy: every command, and every stage's hours.
    assert shipping.recorded_commands(home, 1) == shipping.recorded_commands(original, 1)
    assert len(shipping.recorded_commands(home, 1)) == 6  # 2 VAE runs
    for folder in (layout.rollouts, layout.latent_stats):
        hours = shipping.files_hours([folder(home, "random")])
        assert hours is not None and hours == shipping.files_hours([folder(original, "random")])
    for run in (layout.vae_training, layout.memory_training):
        assert shipping.training_hours(run(home)) == shipping.training_hours(run(original))
    command = json.loads((home / "control" / "run.json").read_text())["command"]
    flags = [
        f"--{key.replace('_', '-')}={command[key]}"
        for key in ("popsize", "episodes_per_candidate", "sigma0", "eval_every", "eval_episodes")
        + ("envs_per_worker", "episode_length", "num_process")
    ]
    resumed = subprocess.run(
        [
            sys.executable,
            "-m",
            "worldmodels.control.train_controller",
            "--home",
            str(home),
            "--generations",
            "3",
            *flags,
        ],
        capture_output=True,
        text=True,
    )
    assert resumed.returncode == 0, resumed.stderr
    # Resumed on the same V and M (no warm start on new ones), with the saved optimizer.
    assert "resuming after generation 1" in resumed.stdout
    assert "V and M changed" not in resumed.stdout
    assert "generation 2: best" in resumed.stdout


def test_a_snapshot_keeps_a_training_in_progress_whole_and_a_finished_one_as_weights(
    trained_controller_home, tmp_path
):
    home = tmp_path / "home"
    shutil.copytree(trained_controller_home, home)
    # V asked for one epoch more than its checkpoint completed: a training in progress.
    run_file = layout.vae_training(home) / "run.json"
    recorded = json.loads(run_file.read_text())
    recorded["config"]["vae"]["epochs"] += 1
    run_file.write_text(json.dumps(recorded))
    snapshot = tmp_path / "snapshot"
    subprocess.run(
        [sys.executable, str(REPO / "scripts" / "snapshot_run.py"), str(home), str(snapshot)],
        check=True,
        capture_output=True,
    )

    def variables(run):
        reader = tf.train.load_checkpoint(str(run / "checkpoints"))
        return {name: reader.get_tensor(name) for name in reader.get_variable_to_shape_map()}

    # V whole (weights, optimizer moments, position in the data), M as weights only.
    original, copied = (
        variables(layout.vae_training(home)),
        variables(layout.vae_training(snapshot)),
    )
    assert copied.keys() == original.keys() and any("optimizer" in name for name in copied)
    for name, value in original.items():
        np.testing.assert_array_equal(copied[name], value, err_msg=name)
    memory = variables(layout.memory_training(snapshot))
    assert memory and not any("optimizer" in name for name in memory)
    assert "epoch/.ATTRIBUTES/VARIABLE_VALUE" not in memory


def test_without_a_source_it_installs_the_agent_shipped_beside_the_script(served, tmp_path):
    url, folder, _ = served
    repository = tmp_path / "repository"
    (repository / "pretrained").mkdir(parents=True)
    shutil.copyfile(REPO / "pretrained.sh", repository / "pretrained.sh")
    for name in ("agent.tar.gz", "agent.tar.gz.sha256"):
        shutil.copyfile(folder / name, repository / "pretrained" / name)
    home = tmp_path / "home"
    result = pretrained_sh("--home", str(home), script=repository / "pretrained.sh")
    assert result.returncode == 0, result.stderr
    assert (home / "control" / "generations" / "generation_1" / "mean.npy").exists()
    # The checksum beside it is checked: a damaged shipped archive installs nothing.
    (repository / "pretrained" / "agent.tar.gz.sha256").write_text("0" * 64 + "  agent.tar.gz\n")
    other = tmp_path / "other"
    result = pretrained_sh("--home", str(other), script=repository / "pretrained.sh")
    assert result.returncode != 0 and "checksum mismatch" in result.stderr
    assert not (other / "control").exists()


def test_pretrained_sh_without_arguments_installs_the_shipped_agent_checksum_verified(tmp_path):
    """The agent shipped in pretrained/, as shipped (data, not a fixture): its checksum file and
    card name its bytes, pretrained.sh without a source installs exactly its files into a home
    whose commands then find the card's generation, and a damaged copy installs nothing."""
    from worldmodels.control.generations import load_agent_controller

    shipped = REPO / "pretrained"
    archive = shipped / "agent.tar.gz"
    checksum = hashlib.sha256(archive.read_bytes()).hexdigest()
    assert (shipped / "agent.tar.gz.sha256").read_text() == f"{checksum}  agent.tar.gz\n"
    assert checksum in (shipped / "card.md").read_text()
    home = tmp_path / "home"
    result = pretrained_sh("--home", str(home))
    assert result.returncode == 0, result.stderr
    with tarfile.open(archive) as tar:
        files = {m.name: tar.extractfile(m).read() for m in tar.getmembers() if m.isfile()}
    assert snapshot(home) == files
    card = json.loads((shipped / "evaluation.json").read_text())
    controller = load_agent_controller(home, "best")
    assert (controller.generation, controller.latent) == (card["generation"], card["latent"])
    # And it still drives as its card says: its first two test episodes (stock CarRacing-v3,
    # the test tracks, 1000 steps) score what the card recorded. Two, stepped as one batch: a
    # batch of one takes other float paths in V and M, and the trajectory drifts (measured:
    # 483.1 instead of 805.5 on the first track).
    evaluate.main(["--home", str(home), "--episodes", "2", "--env", "stock", "--num-process", "1"])
    report = json.loads(layout.evaluation_file(home, card["generation"]).read_text())
    assert report["track_seeds"] == card["track_seeds"][:2]
    assert report["rewards"] == pytest.approx(card["rewards"][:2], abs=1e-6)

    repository = tmp_path / "repository"
    (repository / "pretrained").mkdir(parents=True)
    for name in ("pretrained.sh", "pretrained/agent.tar.gz.sha256"):
        shutil.copyfile(REPO / name, repository / name)
    damaged = bytearray(archive.read_bytes())
    damaged[len(damaged) // 2] ^= 1
    (repository / "pretrained" / "agent.tar.gz").write_bytes(bytes(damaged))
    other = tmp_path / "other"
    result = pretrained_sh("--home", str(other), script=repository / "pretrained.sh")
    assert result.returncode != 0 and "checksum mismatch" in result.stderr
    assert not other.exists()  # made for the install, removed with it


def test_stage_hours_leave_out_the_time_between_an_interruption_and_its_resume(tmp_path):
    # Two processes of one training run, 100 s and 50 s long, an hour apart, and an earlier
    # run of 20 s that --load-model moved aside.
    run = tmp_path / "vae-training"
    processes = {
        run: ((0.0, 100.0), (3700.0, 50.0)),
        run / "previous-runs" / "run-0": ((-9e3, 20.0),),
    }
    for folder, spans in processes.items():
        tensorboard = folder / "tensorboard"
        tensorboard.mkdir(parents=True)
        for start, length in spans:
            path = tensorboard / f"events.out.tfevents.{start:.0f}.v2"
            records = tf.io.TFRecordWriter(str(path))
            for wall_time in (start, start + length / 2, start + length):
                event = tf.compat.v1.Event(wall_time=wall_time, step=1)
                records.write(event.SerializeToString())
            records.close()
    assert shipping.training_hours(run) == pytest.approx(170 / 3600)
    # Episode files written 60 s apart, then after a stop of an hour, 30 s apart; a second
    # dataset's files by another command, 10 s apart, a day later.
    written_at = {"agent-random": (0, 60, 120, 3720, 3750), "controller": (9e4, 9e4 + 10)}
    for dataset, times in written_at.items():
        (tmp_path / dataset).mkdir()
        for index, written in enumerate(times):
            path = tmp_path / dataset / f"episode-{index:06d}.tfrecord"
            path.write_bytes(b"")
            os.utime(path, (written, written))
    folders = [tmp_path / name for name in ("agent-random", "controller", "brownian")]
    assert shipping.files_hours(folders[:1]) == pytest.approx(150 / 3600)
    assert shipping.files_hours(folders) == pytest.approx(160 / 3600)
    assert shipping.files_hours(folders[2:]) is None


def test_the_card_lists_the_commands_that_trained_the_agent_with_their_flags(
    trained_controller_home, tmp_path
):
    from worldmodels.data import sample_policy
    from worldmodels.vision import train_vae

    home = tmp_path / "home"
    shutil.copytree(trained_controller_home, home)
    # A second iteration: episodes in a dataset of its own, and a VAE trained on them.
    sample_policy.main(
        ["--home", str(home), "--dataset", "random-2", "--seed", "1", "--episodes", "1"]
        + ["--episode-length", "30", "--num-process", "1"]
    )
    train_vae.main(
        ["--home", str(home), "--dataset", "random-2", "--epochs", "1", "--batch-size", "8"]
        + ["--shuffle-buffer", "64", "--validation-share", "0", "--load-model"]
    )
    commands = [shlex.split(line) for line in shipping.recorded_commands(home, 1)]
    previous_vae = layout.vae_training(home) / "previous-runs" / "run-0"
    recorded = {
        "worldmodels.data.sample_policy": json.loads(
            layout.sampling_config(home, "random").read_text()
        )["command"],
        "worldmodels.vision.train_vae": layout.recorded_run(previous_vae)["config"]["command"],
        "worldmodels.data.sample_latent_stats": None,
        "worldmodels.memory.train_memory": layout.recorded_run(layout.memory_training(home))[
            "config"
        ]["command"],
        "worldmodels.data.sample_policy --dataset random-2": json.loads(
            layout.sampling_config(home, "random-2").read_text()
        )["command"],
        "worldmodels.vision.train_vae --load-model": layout.recorded_run(layout.vae_training(home))[
            "config"
        ]["command"],
        "worldmodels.control.train_controller": layout.recorded_run(layout.control(home))[
            "command"
        ],
    }
    assert [words[2] for words in commands] == [name.split()[0] for name in recorded]
    assert commands[2][3:] == ["--dataset", "random"]
    # Each line parses back into exactly the arguments its run recorded (a record may hold
    # settings its command has no flag for, such as the controller's evaluation_episodes).
    for words, record in zip(commands, recorded.values()):
        if record is not None:
            module = importlib.import_module(words[2])
            parsed = vars(module.parse_args([*words[3:], "--home", record["home"]]))
            assert json.loads(json.dumps(parsed, default=str)) == {
                name: record[name] for name in parsed
            }
    assert "--load-model" in commands[5] and "--load-model" not in commands[1]
    assert commands[4][commands[4].index("--dataset") + 1] == "random-2"
    # A controller's episodes list the generation they sampled by number, not as "best".
    config = layout.sampling_config(home, "random-2")
    config.write_text(json.dumps({**json.loads(config.read_text()), "sampled_generation": 7}))
    sampling = shlex.split(shipping.recorded_commands(home, 1)[4])
    assert sampling[sampling.index("--generation") + 1] == "7"


def test_v_and_m_train_on_several_datasets_and_the_card_lists_them(
    trained_controller_home, tmp_path, capsys
):
    from worldmodels.data import sample_latent_stats, sample_policy
    from worldmodels.memory import train_memory
    from worldmodels.vision import train_vae

    home = tmp_path / "home"
    shutil.copytree(trained_controller_home, home)
    # A second iteration's episodes, whose file names repeat the first's, then V and M
    # retrained on both datasets.
    sample_policy.main(
        ["--home", str(home), "--dataset", "random-2", "--seed", "1", "--episodes", "2"]
        + ["--episode-length", "30", "--num-process", "1"]
    )
    both = ["--home", str(home), "--dataset", "random", "random-2", "--load-model"]
    vae_flags = [*both, "--epochs", "1", "--batch-size", "8", "--shuffle-buffer", "64"]
    train_vae.main([*vae_flags, "--validation-share", "0.25"])
    run = layout.recorded_run(layout.vae_training(home))
    assert run["settings"]["dataset"] == ["random", "random-2"]
    (held_out,) = run["validation_episodes"]  # one of the four, named with its folder
    assert held_out.split("/")[0] in {"random-rollouts", "random-2-rollouts"}
    assert "trained the VAE" in capsys.readouterr().out
    train_vae.main([*vae_flags, "--validation-share", "0.25"])  # the same run, finished
    assert "resumed from" in capsys.readouterr().out
    assert layout.recorded_run(layout.vae_training(home))["validation_episodes"] == [held_out]
    with pytest.raises(SystemExit):
        train_vae.parse_args(["--dataset", "random", "random"])
    assert "--dataset: name each dataset once" in capsys.readouterr().err

    memory_flags = [*both, "--epochs", "1", "--batch-size", "2"]
    with pytest.raises(SystemExit, match="latent-stats/random holds .* another VAE"):
        train_memory.main(memory_flags)
    sample_latent_stats.main(["--home", str(home), "--dataset", "random", "--overwrite"])
    with pytest.raises(SystemExit, match="latent-stats/random-2; encode episodes first"):
        train_memory.main(memory_flags)
    sample_latent_stats.main(["--home", str(home), "--dataset", "random-2"])
    train_memory.main(memory_flags)
    assert layout.trained_datasets(layout.memory_training(home)) == ["random", "random-2"]

    *_, vae, random_stats, random_2_stats, memory, _ = shipping.recorded_commands(home, 1)
    assert "--dataset random random-2" in vae and "--load-model" in vae
    assert random_stats.endswith("sample_latent_stats --dataset random --overwrite")
    assert random_2_stats.endswith("sample_latent_stats --dataset random-2")
    assert "--dataset random random-2" in memory and "--load-model" in memory


def test_a_resume_may_change_popsize_and_episodes_per_candidate_and_the_card_lists_each_phase(
    trained_controller_home, tmp_path
):
    from worldmodels.control import train_controller
    from worldmodels.control.generations import load_optimizer, load_summary

    home = tmp_path / "home"
    shutil.copytree(trained_controller_home, home)  # 2 generations of 4 x 1 episodes
    flags = ["--home", str(home), "--popsize", "4", "--episode-length", "30"]
    flags += ["--num-process", "1", "--envs-per-worker", "2", "--eval-every", "1"]
    flags += ["--eval-episodes", "2"]
    with pytest.raises(SystemExit, match="other settings.*sigma0"):
        train_controller.main([*flags, "--generations", "3", "--sigma0", "0.5"])
    train_controller.main([*flags, "--generations", "3", "--episodes-per-candidate", "2"])
    assert [load_summary(home, n)["episodes"] for n in (0, 1, 2)] == [4, 4, 8]
    phases = layout.recorded_run(layout.control(home))["earlier_phases"]
    assert [(p["until_generation"], p["command"]["episodes_per_candidate"]) for p in phases] == [
        (2, 1)
    ]
    # With two tracks per candidate, how much of the ranking is above the tracks' luck.
    noise = load_summary(home, 2)["fitness_noise"]
    assert set(noise) == {"candidate_sd", "episode_noise_sd", "signal_to_noise"}
    assert load_summary(home, 1)["fitness_noise"] is None  # one track: not measurable
    *_, before, after = shipping.recorded_commands(home, 2)
    assert "--generations 2 " in before and "--episodes-per-candidate 1" in before
    assert "--generations 3 " in after and "--episodes-per-candidate 2" in after
    # Generation 1's agent was trained by the first phase alone.
    *_, memory, only_phase = shipping.recorded_commands(home, 1)
    assert "train_memory" in memory and only_phase == before
    # Rerunning the finished run with yet other episodes trains nothing and records no phase.
    run_file = layout.control_run_file(home).read_text()
    train_controller.main([*flags, "--generations", "3", "--episodes-per-candidate", "4"])
    assert layout.control_run_file(home).read_text() == run_file

    # A larger population goes on from where the search stands.
    flags[flags.index("--popsize") + 1] = "6"
    train_controller.main([*flags, "--generations", "4", "--episodes-per-candidate", "2"])
    assert np.load(layout.generation(home, 3) / "population.npy").shape[0] == 6
    assert load_optimizer(home, 3).popsize == 6 and load_summary(home, 3)["episodes"] == 12
    phases = layout.recorded_run(layout.control(home))["earlier_phases"]
    assert [(p["until_generation"], p["command"]["popsize"]) for p in phases] == [(2, 4), (3, 4)]
    *_, third_phase = shipping.recorded_commands(home, 3)
    assert "--generations 4 --popsize 6 --episodes-per-candidate 2" in third_phase


def run_ship(home, out, *flags):
    return subprocess.run(
        [sys.executable, "-m", "worldmodels.ship", "--home", str(home)]
        + ["--out", str(out), "--episodes", "2", "--num-process", "1", "--gif-steps", "5"]
        + list(flags),
        capture_output=True,
        text=True,
        cwd=REPO,
    )


@pytest.fixture
def home_with_an_older_generation(trained_controller_home, tmp_path):
    """A copy of the trained home (ship_agent writes its evaluation into it) whose generation 0
    was trained on V and M retrained since, with the best evaluation of all: never shippable."""
    home = tmp_path / "home"
    shutil.copytree(trained_controller_home, home)
    summary_file = home / "control" / "generations" / "generation_0" / "summary.json"
    summary = json.loads(summary_file.read_text())
    summary_file.write_text(
        json.dumps({**summary, "world_model": "older", "evaluation": {"mean": 1e6, "std": 0.0}})
    )
    return home


def test_ship_agent_refuses_a_generation_of_older_v_and_m(home_with_an_older_generation, tmp_path):
    shipped = run_ship(home_with_an_older_generation, tmp_path / "shipped", "--generation", "0")
    assert shipped.returncode != 0
    assert "generation 0 was trained on other VAE and MDN-RNN weights" in shipped.stderr
    assert not (tmp_path / "shipped" / "agent.tar.gz").exists()


def test_ship_agent_packs_the_chosen_generation_with_its_card(
    home_with_an_older_generation, tmp_path
):
    home, out = home_with_an_older_generation, tmp_path / "shipped"
    evaluate.main(
        ["--home", str(home), "--generation", "1", "--episodes", "2", "--seed", "1"]
        + ["--episode-length", "10", "--num-process", "1", "--envs-per-worker", "2"]
    )
    validation = json.loads(layout.evaluation_file(home, 1, seed=1).read_text())
    # A generation trained after the shipped one: not part of its hours or its commands.
    later = layout.generation(home, 2)
    shutil.copytree(layout.generation(home, 1), later)
    summary = json.loads((later / "summary.json").read_text())
    (later / "summary.json").write_text(json.dumps({**summary, "generation": 2}))
    # A validation of the later generation, on the same tracks, 10 and 30 lower.
    layout.evaluation_file(home, 2, seed=1).write_text(
        json.dumps(
            {
                **validation,
                "generation": 2,
                "rewards": [r - d for r, d in zip(validation["rewards"], (10, 30))],
                "mean": validation["mean"] - 20,
            }
        )
    )
    # A validation report of the older generation: not evidence for this agent.
    layout.evaluation_file(home, 0, seed=1).write_text(
        json.dumps({**validation, "generation": 0, "mean": 1e6})
    )
    # Other agents' reports: one on generation 1's validation tracks, 40 and 60 lower (this
    # minus it: +50 ± 10); one on other tracks.
    other_agent, elsewhere = tmp_path / "other-agent.json", tmp_path / "elsewhere.json"
    other_agent.write_text(
        json.dumps(
            {**validation, "rewards": [r - d for r, d in zip(validation["rewards"], (40, 60))],
             "mean": validation["mean"] - 50}
        )
    )  # fmt: skip
    elsewhere.write_text(json.dumps({**validation, "seed": 7, "track_seeds": [1, 2]}))
    shipped = run_ship(
        home, out, "--generation", "1", "--note", "Rebuilt on another machine.",
        "--compare-with", str(other_agent), str(elsewhere),
    )  # fmt: skip
    assert shipped.returncode == 0, shipped.stderr
    better = (
        f"against {other_agent} ({validation['mean'] - 50:.1f} on the same 2 tracks): this "
        "minus it +50.0 ± 10.0 (paired standard error), better by more than two standard errors"
    )
    assert better in shipped.stdout
    assert f"against {elsewhere}: not paired, it ran other tracks (its seed 7" in shipped.stdout
    archive = (out / "agent.tar.gz").read_bytes()
    assert (out / "agent.tar.gz.sha256").read_text().split()[0] == hashlib.sha256(
        archive
    ).hexdigest()
    rewards = json.loads((out / "evaluation.json").read_text())["rewards"]
    assert len(rewards) == 2
    # Shipping it again would use this report; one of other tracks or another env, not.
    existing_test_evaluation = shipping.existing_test_evaluation
    assert existing_test_evaluation(home, 1, 2)
    assert not existing_test_evaluation(home, 1, 3) and not existing_test_evaluation(home, 2, 2)
    report = layout.evaluation_file(home, 1)
    as_written = json.loads(report.read_text())
    report.write_text(json.dumps({**as_written, "latent": "mode"}))  # not as generation 1 trained
    assert not existing_test_evaluation(home, 1, 2)
    report.write_text(json.dumps({**as_written, "env": "fast"}))
    assert not existing_test_evaluation(home, 1, 2)
    card = (out / "card.md").read_text()
    mean, std = sum(rewards) / 2, abs(rewards[0] - rewards[1]) / 2
    assert f"**{mean:.0f} ± {std:.0f}**" in card
    assert "0 of the 2 episodes finished their lap within 1000 steps" in card
    assert hashlib.sha256(archive).hexdigest() in card
    assert "the distribution mean of CMA-ES generation 1, chosen on the validation tracks" in card
    assert f"| 1 | 2 (seed 1, fast env) | {validation['mean']:.1f} ± " in card
    # Shipped minus generation 2, per track: 10 and 30, so 20 ± 10 (sample sd 14.1 / sqrt 2).
    assert "| 0 |  |\n| 2 | 2 (seed 1, fast env) | " in card
    assert card.split("\n| 2 | 2 (seed 1")[1].split("\n")[0].endswith("| 0 | +20.0 ± 10.0 |")
    assert "\n| 0 | " not in card
    for stage in ("1. sampling", "2. VAE training", "4. MDN-RNN training", "5. controller", "all"):
        assert f"| {stage}" in card
    assert "is not counted.\n\nRebuilt on another machine.\n\n![learning curve]" in card
    assert f"standard errors):\n\n- {better}\n- against {elsewhere}: not paired" in card
    assert "python -m worldmodels.control.train_controller --generations 2 --popsize 4" in card
    assert "| 5. controller training, 2 generations |" in card
    for name in ("evaluation.png", "learning-curve.png", "fitness.png", "agent.gif"):
        assert (out / name).stat().st_size > 0
    fresh = tmp_path / "fresh"
    subprocess.run(
        [sys.executable, "-m", "worldmodels.pretrained", "install", str(out / "agent.tar.gz")]
        + ["--home", str(fresh)],
        check=True,
        capture_output=True,
    )
    assert (fresh / "control" / "generations").is_dir()
