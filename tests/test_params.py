import dataclasses
import json

import pytest

from worldmodels.layout import resolve_home
from worldmodels.params import PRESETS, Config, ConfigError, config_from_dict


def test_home_prefers_flag_then_environment_then_default(tmp_path, monkeypatch):
    monkeypatch.setenv("WORLD_MODELS_HOME", str(tmp_path / "from-env"))
    assert resolve_home(tmp_path / "from-flag") == tmp_path / "from-flag"
    assert resolve_home(None) == tmp_path / "from-env"
    monkeypatch.delenv("WORLD_MODELS_HOME")
    monkeypatch.setenv("HOME", str(tmp_path))
    assert resolve_home(None) == tmp_path / "world-models-experiments"


def test_paper_defaults():
    config = Config()
    assert config.env.episode_length == 1000
    assert config.vae.kl_tolerance == 0.5 and config.sampling.policy == "random"
    assert config.memory.lstm_units == 256 and config.memory.num_mixtures == 5
    assert config.controller.popsize == 64 and config.controller.episodes_per_candidate == 16


def test_overrides_nested_and_ints_widen_to_floats():
    config = config_from_dict({"vae": {"batch_size": 8, "learning_rate": 1}})
    assert config.vae.batch_size == 8
    assert config.vae.learning_rate == 1.0 and isinstance(config.vae.learning_rate, float)
    assert config.memory == Config().memory


@pytest.mark.parametrize(
    "values, named",
    [
        ({"vae": {"batchsize": 8}}, "vae.batchsize"),
        ({"vision": {}}, "vision"),
        ({"vae": {"batch_size": 8.5}}, "vae.batch_size"),
        ({"vae": {"batch_size": True}}, "vae.batch_size"),
        ({"controller": {"cma_diagonal": 1}}, "controller.cma_diagonal"),
        ({"env": 3}, "env"),
        ({"sampling": {"policy": "controller"}}, "sampling.policy"),
        # Not settings: the VAE's input and latent shapes are fixed by the architecture, and
        # no pipeline stage samples the MDN-RNN.
        ({"env": {"frame_size": 32}}, "env.frame_size"),
        ({"env": {"crop_rows": 80}}, "env.crop_rows"),
        ({"vae": {"latent_dim": 16}}, "vae.latent_dim"),
        ({"memory": {"temperature": 1.5}}, "memory.temperature"),
        ({"controller": {"latent": "mean"}}, "controller.latent"),
        ({"controller": {"latent": "mode", "in_dream": True}}, "controller.latent"),
        ({"memory": {"train_heads_only": True}}, "memory.train_heads_only"),
        # A setting's choices and range hold for configs as for its flag.
        ({"env": {"env": "gpu"}}, "env.env"),
        ({"controller": {"actions": 4}}, "controller.actions"),
        ({"vae": {"epochs": 0}}, "vae.epochs"),
        ({"controller": {"stall_steps": -1}}, "controller.stall_steps"),
        ({"memory": {"validation_share": 1.0}}, "memory.validation_share"),
        (
            {"recipe": {"iterations": 2, "changes": {"2": {"controller": {"popsize": 0}}}}},
            "recipe.changes.2.controller.popsize",
        ),
    ],
)
def test_unknown_keys_and_wrong_types_are_errors_naming_the_key(values, named):
    with pytest.raises(ConfigError, match=named.replace(".", r"\.")):
        config_from_dict(values)


@pytest.mark.parametrize(
    "iterations, expected",
    [
        (3, "expected '2' to '3'"),
        (1, r"a run of one iteration has none \(set recipe.changes=\{\}\)"),
    ],
)
def test_changes_naming_an_iteration_the_run_does_not_have_say_which_it_has(iterations, expected):
    changes = {"4": {"controller": {"popsize": 8}}}
    with pytest.raises(ConfigError, match=f"names iteration '4'; {expected}"):
        config_from_dict({"recipe": {"iterations": iterations, "changes": changes}})


def test_saved_config_loads_back_identically(tmp_path):
    path = tmp_path / "config.json"
    PRESETS["tiny"].save(path)
    assert config_from_dict(json.loads(path.read_text())) == PRESETS["tiny"]
    assert PRESETS["tiny"] != PRESETS["paper"]


STAGE_SETTINGS = [
    ("worldmodels.vision.train_vae", "VAEParams", []),
    ("worldmodels.memory.train_memory", "MemoryParams", []),
    ("worldmodels.control.train_controller", "ControllerParams", []),
    ("worldmodels.data.sample_policy", "SamplingParams", ["--policy", "random"]),
]


@pytest.mark.parametrize("command, params_name, required", STAGE_SETTINGS)
def test_a_stages_flags_are_its_settings_declared_once(command, params_name, required):
    """Each setting a stage's command takes is derived from its field: the flag exists with the
    field's doc in --help, no flags give the field's default, a flag gives the field its value."""
    import importlib

    from worldmodels import params
    from worldmodels.cli import settings_from_args

    module = importlib.import_module(command)
    cls = getattr(params, params_name)
    defaults = settings_from_args(cls, module.parse_args(required))
    flagged = {
        name
        for name in (field.name for field in dataclasses.fields(cls))
        if hasattr(module.parse_args(required), name)
    }
    assert flagged, command
    for field in dataclasses.fields(cls):
        assert field.metadata.get("doc"), f"{params_name}.{field.name} has no doc"
        if field.name in flagged:
            assert getattr(defaults, field.name) == field.default
    changed = next(
        name for name in sorted(flagged) if type(getattr(cls(), name)) is int
    )  # an integer setting: 3 fits every range check
    flag = f"--{changed.replace('_', '-')}"
    assert getattr(settings_from_args(cls, module.parse_args([*required, flag, "3"])), changed) == 3


def test_a_bad_value_for_a_derived_flag_names_the_flag(capsys):
    from worldmodels.vision import train_vae

    with pytest.raises(SystemExit):
        train_vae.parse_args(["--validation-share", "1.5"])
    assert "--validation-share" in capsys.readouterr().err


def test_a_run_records_and_checks_every_setting_but_its_length_and_machinery():
    from worldmodels.params import (
        FREE,
        KEPT,
        NEW_PHASE,
        ControllerParams,
        MemoryParams,
        VAEParams,
        new_phase_settings,
        run_settings,
    )

    for params in (VAEParams, MemoryParams, ControllerParams):
        kinds = {f.name: f.metadata["resume"] for f in dataclasses.fields(params)}
        assert set(kinds.values()) <= {KEPT, NEW_PHASE, FREE}
        recorded = run_settings(params(seed=4))
        assert recorded == {
            name: getattr(params(seed=4), name) for name, kind in kinds.items() if kind != FREE
        }
        assert recorded["seed"] == 4
    assert "epochs" not in run_settings(VAEParams()) | run_settings(MemoryParams())
    assert not {"generations", "eval_every", "envs_per_worker", "worker_timeout"} & set(
        run_settings(ControllerParams())
    )
    assert new_phase_settings(ControllerParams) == (
        "popsize",
        "episodes_per_candidate",
        "latent",
        "in_dream",
        "dream_temperature",
        "dream_horizon",
        "dream_disagreement_penalty",
    )
