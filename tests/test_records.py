"""run.json's one migration path: records of every schema read as the current one."""

import json
import shutil
import tarfile
from pathlib import Path

import pytest

from worldmodels import layout
from worldmodels.params import VAE_SCHEDULES, VAEParams
from worldmodels.records import RUN_SCHEMA, memory_settings, read_run, stamped, vae_latent

DATA = Path(__file__).with_name("data")
STAGES = (layout.VAE_TRAINING, layout.MEMORY_TRAINING, layout.CONTROL)


@pytest.fixture(scope="module")
def first_agent(tmp_path_factory):
    """A home holding the run.json files of the first agent's run (schema 1, git 3522b3d)."""
    home = tmp_path_factory.mktemp("first-agent")
    shutil.copytree(DATA / "first-agent-records", home, dirs_exist_ok=True)
    return home


@pytest.fixture(scope="module")
def shipped_agent(tmp_path_factory):
    """A home holding the run.json files of the shipped agent (schema 1, every setting)."""
    home = tmp_path_factory.mktemp("shipped-agent")
    root = Path(__file__).resolve().parents[1]
    with tarfile.open(root / "pretrained" / "agent.tar.gz") as archive:
        for member in archive.getmembers():
            if member.name.endswith(layout.RUN_FILE):
                archive.extract(member, home, filter="data")
    return home


def raw(home, stage):
    return json.loads((home / stage / layout.RUN_FILE).read_text())


@pytest.mark.parametrize("stage", STAGES)
def test_old_records_gain_the_settings_added_since_with_what_their_runs_did(
    first_agent, shipped_agent, stage
):
    old, migrated = raw(first_agent, stage), read_run(first_agent / stage)
    assert "schema" not in old and migrated["schema"] == RUN_SCHEMA
    # Recorded settings are kept as they were.
    assert {k: migrated["settings"][k] for k in old["settings"]} == old["settings"]
    # Every setting today's runs record is there, but the memory's VAE fingerprint, which
    # only the statistics on disk can tell (train_memory decides that on resume).
    current = set(read_run(shipped_agent / stage)["settings"])
    assert current - set(migrated["settings"]) == (
        {"latent_stats_vae"} if stage == layout.MEMORY_TRAINING else set()
    )


def test_old_records_read_as_the_paper_s_agent(first_agent):
    control = read_run(first_agent / layout.CONTROL)["settings"]
    assert (control["controller_inputs"], control["actions"], control["latent"]) == (
        "zh",
        3,
        "sample",
    )
    assert (control["stall_steps"], control["in_dream"]) == (0, False)
    assert vae_latent(first_agent) == "continuous"
    assert memory_settings(first_agent) == {
        "memory": "lstm",
        "attention_window": 32,
        "lstm_units": 256,
        "num_mixtures": 5,
        "reward_done_heads": False,
        "reward_done_ensemble": 1,
    }


# What schemas 3 to 5 changed, with what every earlier run had: each run records all its
# params' kept settings, the discrete VAE's schedules and the dream's temperature included
# (recorded before only where they applied), and the dream's remedies, new (3: the
# over-prediction weight and the horizon; 4: the ensemble of heads and its penalty; 5:
# training the heads alone).
SCHEDULES = {key: getattr(VAEParams(), key) for key in VAE_SCHEDULES}
FILLED_BY_SCHEMA_4 = {
    layout.VAE_TRAINING: {},
    layout.MEMORY_TRAINING: {"reward_done_ensemble": 1},
    layout.CONTROL: {"dream_disagreement_penalty": 0.0},
}
FILLED_BY_SCHEMA_5 = {layout.MEMORY_TRAINING: {"train_heads_only": False}}
FILLED_SINCE_SCHEMA_2 = {
    layout.VAE_TRAINING: SCHEDULES,
    layout.MEMORY_TRAINING: {
        "reward_overprediction_weight": 1.0,
        "reward_done_ensemble": 1,
        "train_heads_only": False,
    },
    layout.CONTROL: FILLED_BY_SCHEMA_4[layout.CONTROL],
}
NOT_DREAMING = {"dream_temperature": 1.0, "dream_horizon": 0}


@pytest.mark.parametrize("stage", STAGES)
def test_a_record_with_every_setting_of_its_day_gains_only_the_later_ones(shipped_agent, stage):
    # The shipped agent's records: schema 1 in form, every setting schema 2 knows.
    old, migrated = raw(shipped_agent, stage), read_run(shipped_agent / stage)
    settings = {**FILLED_SINCE_SCHEMA_2[stage], **old["settings"]}
    if stage == layout.CONTROL:
        assert old["settings"]["dream_temperature"] is None  # it did not dream
        settings.update(NOT_DREAMING)
    assert migrated == {**old, "schema": RUN_SCHEMA, "settings": settings}


@pytest.mark.parametrize("stage", STAGES)
def test_a_schema_2_record_reads_as_the_current_schema(tmp_path, stage):
    (tmp_path / stage).mkdir()
    record = {"schema": 2, "settings": {"seed": 3, "dream_temperature": None}}
    (tmp_path / stage / layout.RUN_FILE).write_text(json.dumps(record))
    expected = {**FILLED_SINCE_SCHEMA_2[stage], "seed": 3, "dream_temperature": None}
    if stage == layout.CONTROL:
        expected.update(NOT_DREAMING)
    assert read_run(tmp_path / stage) == {"schema": RUN_SCHEMA, "settings": expected}


@pytest.mark.parametrize("stage", STAGES)
def test_a_schema_3_record_gains_the_ensemble_its_penalty_and_heads_only(tmp_path, stage):
    (tmp_path / stage).mkdir()
    record = {"schema": 3, "settings": {"seed": 3, "reward_done_ensemble": 5}}
    (tmp_path / stage / layout.RUN_FILE).write_text(json.dumps(record))
    expected = {
        **FILLED_BY_SCHEMA_4[stage],
        **FILLED_BY_SCHEMA_5.get(stage, {}),
        "seed": 3,
        "reward_done_ensemble": 5,
    }
    assert read_run(tmp_path / stage) == {"schema": RUN_SCHEMA, "settings": expected}


def test_a_dream_run_keeps_its_recorded_temperature(tmp_path):
    (tmp_path / layout.CONTROL).mkdir()
    record = {"schema": 2, "settings": {"in_dream": True, "dream_temperature": 1.15}}
    (tmp_path / layout.CONTROL / layout.RUN_FILE).write_text(json.dumps(record))
    settings = read_run(tmp_path / layout.CONTROL)["settings"]
    assert (settings["dream_temperature"], settings["dream_horizon"]) == (1.15, 0)


def test_current_records_are_read_as_written_and_a_missing_one_is_empty(tmp_path):
    written = stamped({"settings": {"latent": "discrete"}})
    (tmp_path / layout.VAE_TRAINING).mkdir()
    (tmp_path / layout.VAE_TRAINING / layout.RUN_FILE).write_text(json.dumps(written))
    assert read_run(tmp_path / layout.VAE_TRAINING) == written
    assert vae_latent(tmp_path) == "discrete"
    assert read_run(tmp_path / layout.CONTROL) == {}


def test_a_summary_written_before_latent_was_recorded_reads_as_sampling(tmp_path):
    from worldmodels.control.generations import controller_latent, load_summary

    for number, summary in enumerate([{"generation": 0}, {"generation": 1, "latent": "mode"}]):
        layout.generation(tmp_path, number).mkdir(parents=True)
        (layout.generation(tmp_path, number) / "summary.json").write_text(json.dumps(summary))
    assert load_summary(tmp_path, 0) == {"generation": 0, "latent": "sample"}
    assert [controller_latent(tmp_path, n) for n in (0, 1)] == ["sample", "mode"]


def test_a_report_written_before_latent_was_recorded_reads_as_sampling(tmp_path):
    from worldmodels.control.evaluation import agent_name
    from worldmodels.records import load_report

    old, current = tmp_path / "old.json", tmp_path / "current.json"
    old.write_text(json.dumps({"candidate": "mean"}))
    current.write_text(
        json.dumps({"candidate": "mean", "latent": "mode", "trained_latent": "sample"})
    )
    assert load_report(old) == {"candidate": "mean", "latent": "sample", "trained_latent": "sample"}
    assert [agent_name(load_report(path)) for path in (old, current)] == ["mean", "mean, z mode"]
