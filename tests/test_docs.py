"""The docs' flag tables against the commands: every flag a table names exists, with the default
the table gives. The tables explain more than --help does; this keeps them from drifting."""

import argparse
import importlib
import re
from pathlib import Path

import pytest

DOCS = Path(__file__).resolve().parents[1] / "docs"
COMMAND = re.compile(r"python -m (worldmodels(?:\.\w+)+)")
HEADER = "| flag | default | meaning |"
# Default cells that describe a value rather than state it.
DESCRIBED = {"CPU count", "the policy's name", "see above", ""}


class _Parsed(Exception):
    pass


def parser_of(module_name: str) -> argparse.ArgumentParser:
    """The parser a command's parse_args builds, caught before it parses anything."""
    module = importlib.import_module(module_name)
    caught = {}

    def catch(self, *args, **kwargs):
        caught["parser"] = self
        raise _Parsed

    original = argparse.ArgumentParser.parse_args
    argparse.ArgumentParser.parse_args = catch
    try:
        module.parse_args([])
    except _Parsed:
        pass
    finally:
        argparse.ArgumentParser.parse_args = original
    return caught["parser"]


def flag_tables() -> list[tuple[str, str, list[str]]]:
    """(page, command module, rows) of every flag table in the docs."""
    tables = []
    for page in sorted(DOCS.glob("*.md")):
        lines = page.read_text().splitlines()
        command = None
        for number, line in enumerate(lines):
            if match := COMMAND.search(line):
                command = match.group(1)
            if line.strip() == HEADER:
                rows = []
                for row in lines[number + 2 :]:
                    if not row.startswith("|"):
                        break
                    rows.append(row)
                tables.append((page.name, command, rows))
    return tables


def documented_value(text: str):
    text = text.strip().strip("`")
    if text == "off":
        return False
    if text == "unset":
        return None
    try:
        return float(text)
    except ValueError:
        return text


def same_default(documented: str, default) -> bool:
    value = documented_value(documented)
    if isinstance(default, list) and len(default) == 1:
        default = default[0]
    if isinstance(value, float) and isinstance(default, (int, float)):
        return value == pytest.approx(default)
    return value == default


TABLES = flag_tables()


def test_the_docs_have_flag_tables_of_the_training_commands():
    commands = {command for _, command, _ in TABLES}
    assert {
        "worldmodels.data.sample_policy",
        "worldmodels.vision.train_vae",
        "worldmodels.memory.train_memory",
        "worldmodels.control.train_controller",
    } <= commands


@pytest.mark.parametrize(
    "page, command, rows", TABLES, ids=[f"{page}:{command}" for page, command, _ in TABLES]
)
def test_each_documented_flag_exists_with_its_documented_default(page, command, rows):
    parser = parser_of(command)
    actions = {flag: action for action in parser._actions for flag in action.option_strings}
    for row in rows:
        flag_cell, default_cell = (cell.strip() for cell in row.strip("|").split("|")[:2])
        flags = re.sub(r"\{[^}]*\}", "", flag_cell)  # the choices, {a,b}
        groups = [re.findall(r"--[a-z][a-z0-9-]*", part) for part in flags.split(",")]
        for group in groups:
            for flag in group:
                assert flag in actions, f"{page}: {command} has no flag {flag}"
        defaults = [d.strip() for d in default_cell.split(",")] if default_cell else []
        if len(defaults) != len(groups):
            assert not defaults, f"{page}: row {flag_cell!r} gives {len(defaults)} defaults"
            continue  # "as for train_vae"
        for group, documented in zip(groups, defaults):
            if documented in DESCRIBED:
                continue
            default = actions[group[0]].default
            assert same_default(documented, default), (
                f"{page}: {command} {group[0]} defaults to {default!r}, the table says {documented}"
            )
