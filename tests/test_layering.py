"""The package's layers, read from its imports: the library below, the commands on top.

A command is a module with a top-level `main` (what `python -m` and the console scripts run).
Every import counts, deferred ones inside functions too. Packages are `data`, `vision`,
`memory` and `control`; each module directly under `worldmodels/` is a unit of its own (the
shared bottom: params, layout, files, seeds, ...; and the pieces that join packages:
training, world_model, latent_stats, figures).
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

import worldmodels

PACKAGE = Path(worldmodels.__file__).parent


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph(root: Path = PACKAGE) -> tuple[dict[str, set[str]], set[str]]:
    """(module -> the package's modules it imports, the command modules)."""
    trees = {module_name(path): ast.parse(path.read_text()) for path in root.rglob("*.py")}
    graph, commands = {}, set()
    for name, tree in trees.items():
        imported = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                imported |= {alias.name for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module:
                # `from package import module` imports the module; `from module import name`
                # the module itself.
                imported |= {
                    f"{node.module}.{alias.name}"
                    if f"{node.module}.{alias.name}" in trees
                    else node.module
                    for alias in node.names
                }
        graph[name] = {other for other in imported if other in trees and other != name}
        graph[name] -= {"worldmodels"}  # the package's __init__ sets an environment variable
        if any(isinstance(node, ast.FunctionDef) and node.name == "main" for node in tree.body):
            commands.add(name)
    return graph, commands


def unit(module: str) -> str:
    """The layer unit of a module: its subpackage, or itself when directly in worldmodels/."""
    parts = module.split(".")
    return ".".join(parts[:2])


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one node (Tarjan's algorithm)."""
    index, low, stack, on_stack, found = {}, {}, [], set(), []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for other in graph.get(node, ()):
            if other not in index:
                visit(other)
                low[node] = min(low[node], low[other])
            elif other in on_stack:
                low[node] = min(low[node], index[other])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


GRAPH, COMMANDS = import_graph()
LIBRARY = set(GRAPH) - COMMANDS


def test_the_scan_sees_the_commands_and_the_imports():
    assert {"worldmodels.vision.train_vae", "worldmodels.pipeline"} <= COMMANDS
    assert "worldmodels.world_model" in GRAPH["worldmodels.control.rollouts"]
    assert "worldmodels.layout" in GRAPH["worldmodels.plots"]


def test_the_cycle_finder_finds_a_cycle_through_three_nodes():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_no_library_module_imports_a_command():
    offending = {
        module: sorted(GRAPH[module] & COMMANDS)
        for module in sorted(LIBRARY)
        if GRAPH[module] & COMMANDS
    }
    assert offending == {}


def test_no_two_modules_import_each_other_even_through_others():
    assert cycles(GRAPH) == []


def test_the_library_packages_form_layers():
    units = {}
    for module in LIBRARY:
        units.setdefault(unit(module), set()).update(
            unit(other)
            for other in GRAPH[module]
            if other in LIBRARY and unit(other) != unit(module)
        )
    assert cycles(units) == []


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_a_command_parses_its_flags_without_loading_tensorflow(command):
    """What makes --help fast: a command imports its library after parsing."""
    probe = (
        "import importlib, sys\n"
        f"module = importlib.import_module({command!r})\n"
        "try:\n"
        "    module.main(['--help'])\n"
        "except SystemExit:\n"
        "    pass\n"
        "heavy = sorted({name.split('.')[0] for name in sys.modules}"
        " & {'tensorflow', 'keras', 'gymnasium', 'matplotlib', 'ray'})\n"
        "print('heavy:' + ','.join(heavy))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True
    )
    assert result.stdout.splitlines()[-1] == "heavy:"
