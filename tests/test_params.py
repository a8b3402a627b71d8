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
    ],
)
def test_unknown_keys_and_wrong_types_are_errors_naming_the_key(values, named):
    with pytest.raises(ConfigError, match=named.replace(".", r"\.")):
        config_from_dict(values)


def test_saved_config_loads_back_identically(tmp_path):
    path = tmp_path / "config.json"
    PRESETS["tiny"].save(path)
    assert config_from_dict(json.loads(path.read_text())) == PRESETS["tiny"]
    assert PRESETS["tiny"] != PRESETS["paper"]
