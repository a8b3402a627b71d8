"""What the training runs recorded of themselves (each stage's run.json) and evaluation
reports, read in one place.

run.json carries its format's version, `schema`. Records of schema 1 (no `schema` key: every
run before it was versioned, the shipped agent's and earlier runs' included) may lack settings
added since; `read_run` fills those in with what such runs did, so the rest of the code reads
every record as the current schema. A change to run.json's format bumps RUN_SCHEMA and adds
its step to `_migrate`.
"""

from __future__ import annotations

import dataclasses
import json
import sys
from pathlib import Path

from worldmodels import layout
from worldmodels.params import VAE_SCHEDULES, ControllerParams, MemoryParams, VAEParams

RUN_SCHEMA = 5
SCHEMA = "schema"

# Schema 1 -> 2: the settings each stage's runs recorded only once they existed, with the
# value that runs recorded before then had implicitly, by the run's directory.
_SETTINGS_ADDED_BY_SCHEMA_2 = {
    layout.VAE_TRAINING: {"latent": "continuous", "validation_share": 0.0},
    layout.MEMORY_TRAINING: {
        "memory": "lstm",
        "attention_window": 32,  # recorded for every kind of memory; the LSTM ignores it
        "reward_done_heads": False,
        "validation_share": 0.0,
    },
    layout.CONTROL: {
        "controller_inputs": "zh",
        "actions": 3,
        "latent": "sample",
        "stall_steps": 0,
        "in_dream": False,
        "dream_temperature": None,
    },
}


def _settings_of_schema_2(stage: str, settings: dict) -> dict:
    """Schema 1 -> 2: the settings each stage's runs recorded only once they existed, with the
    value that runs recorded before then had implicitly."""
    return {**_SETTINGS_ADDED_BY_SCHEMA_2.get(stage, {}), **settings}


def _settings_of_schema_3(stage: str, settings: dict) -> dict:
    """Schema 2 -> 3: a run records every setting of its params that it keeps
    (`params.run_settings`): the discrete VAE's schedules and the dream's temperature, recorded
    before only where they applied, take the values a run elsewhere ignored; the dream's
    remedies, new, what runs before them had (none)."""
    if stage == layout.VAE_TRAINING:
        return {**{key: getattr(VAEParams(), key) for key in VAE_SCHEDULES}, **settings}
    if stage == layout.MEMORY_TRAINING:
        return {"reward_overprediction_weight": 1.0, **settings}
    if stage == layout.CONTROL:
        defaults = ControllerParams()
        temperature = settings.get("dream_temperature")
        return {
            **settings,
            "dream_temperature": defaults.dream_temperature if temperature is None else temperature,
            "dream_horizon": settings.get("dream_horizon") or defaults.dream_horizon,
        }
    return settings


def _settings_of_schema_4(stage: str, settings: dict) -> dict:
    """Schema 3 -> 4: the ensemble of reward and done heads and the dream's penalty on their
    disagreement, new: what runs before them had (one linear head, no penalty)."""
    if stage == layout.MEMORY_TRAINING:
        return {"reward_done_ensemble": 1, **settings}
    if stage == layout.CONTROL:
        return {"dream_disagreement_penalty": 0.0, **settings}
    return settings


def _settings_of_schema_5(stage: str, settings: dict) -> dict:
    """Schema 4 -> 5: training the heads alone on a trained M, new: runs before it trained all
    of M."""
    if stage == layout.MEMORY_TRAINING:
        return {"train_heads_only": False, **settings}
    return settings


_STEPS = {
    2: _settings_of_schema_2,
    3: _settings_of_schema_3,
    4: _settings_of_schema_4,
    5: _settings_of_schema_5,
}


def read_run(directory: Path) -> dict:
    """The run.json of the run in `directory` (a V or M training run, or control/), in the
    current schema; empty when it has none yet."""
    record = layout.recorded_run(directory)
    if record:
        record = _migrate(record, Path(directory).name)
    return record


def stamped(record: dict) -> dict:
    """`record` marked as written in the current schema, for writing as run.json."""
    return {SCHEMA: RUN_SCHEMA, **record}


def command_record(home: Path, *params, **arguments) -> dict:
    """A stage's call recorded as its command's parsed flags would be (`vars(args)`, names as
    the flags' dests): the home as text, the fields of each params dataclass, then `arguments`.
    Whether the command or the pipeline ran the stage, the card turns this back into the
    command that repeats it (`shipping.recorded_commands`)."""
    record = {"home": str(home)}
    for part in params:
        record.update(dataclasses.asdict(part))
    return {**record, **arguments}


def _migrate(record: dict, stage: str) -> dict:
    """`record` (of the stage whose directory is named `stage`) in the current schema: each
    step from its schema on gives its settings the form they took then, with the values its
    run had."""
    for schema in range(record.get(SCHEMA, 1) + 1, RUN_SCHEMA + 1):
        settings = _STEPS[schema](stage, record.get("settings", {}))
        record = {**record, SCHEMA: schema, "settings": settings}
    return record


def vae_latent(home: Path | None) -> str:
    """The latent type of the home's VAE ("continuous" or "discrete"), from its run.json."""
    recorded = read_run(layout.vae_training(home)) if home is not None else {}
    return recorded["settings"]["latent"] if recorded else "continuous"


def memory_settings(home: Path | None) -> dict:
    """The kind and sizes of the home's MDN-RNN (`memory`, `attention_window`, `lstm_units`,
    `num_mixtures`, `reward_done_heads`, `reward_done_ensemble`), from its run.json: the
    paper's plain 256-unit LSTM with 5 mixtures without a home or a trained one."""
    keys = (
        "memory",
        "attention_window",
        "lstm_units",
        "num_mixtures",
        "reward_done_heads",
        "reward_done_ensemble",
    )
    recorded = read_run(layout.memory_training(home)) if home is not None else {}
    if not recorded:
        return {key: getattr(MemoryParams(), key) for key in keys}
    return {key: recorded["settings"][key] for key in keys}


def load_report(path: Path) -> dict:
    """An evaluation report (`evaluate_agent`'s JSON), every field present: a report written
    before `latent` and `trained_latent` were recorded read z by sampling, as its controller
    was trained. The one place an older report is read as a current one."""
    report = json.loads(Path(path).read_text())
    for key in ("latent", "trained_latent"):
        report.setdefault(key, "sample")
    return report


def read_reports(paths: list[str]) -> dict[str, dict]:
    """The reports `--compare-with` names (`load_report`), by path, checked before anything
    runs: exits with a message naming a file that is not an evaluation report."""
    reports = {}
    for path in paths:
        try:
            reports[path] = load_report(path)
        except (OSError, ValueError) as error:
            sys.exit(f"error: --compare-with {path}: cannot read it as JSON ({error})")
        if not {"rewards", "mean"} <= reports[path].keys():
            sys.exit(
                f"error: --compare-with {path}: not an evaluation report (expected evaluate's "
                "JSON, with its rewards and track seeds)"
            )
    return reports
