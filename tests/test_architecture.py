"""The package's shape: imports only point down the layers, no module imports itself in a circle,
modules and functions stay a size a reader can hold, and the docs name what the code has.

Every `import` in every module counts, also those inside functions (an import tucked into a function
is how a cycle hides), and a lazy one is judged by the same rules.
"""
from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "ragkit"

# Bottom to top. A module may import from its own layer or a lower one, never a higher one; the
# bottom layer imports nothing else from ragkit at all.
LAYERS = [
    {"types", "errors", "config"},                         # the shared shapes, errors and settings
    {"vectors", "files", "progress", "weights", "dates"},  # plumbing every part shares
    {"embedder", "headings", "chunking", "documents", "index", "index_files", "lexical", "hybrid", "cache",
     "rerankers"},                                         # the parts a learner has a word for
    {"backends", "stores"},                                # what talks to the outside
    {"checks", "generate", "pipeline", "techniques"},      # the pipeline, and techniques on it
    {"eval", "workbook", "cli"},                           # what is built on it
    {"__init__", "__main__"},                              # the package's face
]
LAYER = {part: i for i, parts in enumerate(LAYERS) for part in parts}
MAX_MODULE_LINES = 480   # "a few hundred lines": one idea a reader can hold in one sitting
MAX_FUNCTION_LINES = 60  # code lines of a function, its docstring left out: it fits on a screen


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


MODULES = {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def is_package(name: str) -> bool:
    return MODULES[name].name == "__init__.py"


def imports(name: str) -> set[str]:
    """Return the ragkit modules `name` imports (a `from X import y` where X.y is a module counts as X.y)."""
    tree = ast.parse(MODULES[name].read_text(encoding="utf-8"))
    package = name if is_package(name) else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.split(".")[0] == "ragkit"}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if target.split(".")[0] != "ragkit":
                continue
            for alias in node.names:
                sub = f"{target}.{alias.name}"
                found.add(sub if sub in MODULES else target)
    return found - {name}


GRAPH = {name: imports(name) for name in MODULES}


def layer_of(name: str) -> int:
    parts = name.split(".")
    return LAYER["__init__" if len(parts) == 1 else parts[1]]


def test_every_module_has_a_layer():
    unplaced = sorted({n.split(".")[1] for n in MODULES if "." in n} - set(LAYER))
    assert not unplaced, f"put {unplaced} in a layer of LAYERS (and the README's Layout)"


def test_imports_only_point_down():
    wrong = []
    for name, targets in GRAPH.items():
        for target in targets:
            if target == "ragkit" and name != "ragkit":
                wrong.append(f"{name} imports the package itself (import the module that has the name)")
            elif layer_of(target) > layer_of(name):
                wrong.append(f"{name} (layer {layer_of(name)}) imports {target} (layer {layer_of(target)})")
            elif layer_of(name) == 0 and target != name:
                wrong.append(f"{name} is at the bottom but imports {target}")
            elif (is_package(target) and name.startswith(target + ".")):
                wrong.append(f"{name} imports its own package's __init__ ({target}), which sits above it")
    assert not wrong, "\n".join(wrong)


def test_no_import_cycles():
    state: dict[str, int] = {}  # 1: on the path, 2: done
    path: list[str] = []
    cycles = []

    def visit(node: str) -> None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(GRAPH.get(node, ())):
            if state.get(nxt) == 1:
                cycles.append(" -> ".join(path[path.index(nxt):] + [nxt]))
            elif nxt not in state:
                visit(nxt)
        path.pop()
        state[node] = 2

    for name in sorted(GRAPH):
        if name not in state:
            visit(name)
    assert not cycles, "\n".join(cycles)


def test_the_checks_above_would_catch_a_cycle_and_an_upward_import(tmp_path):
    """The graph is really read: index imports cache, the factory imports its backends."""
    assert "ragkit.cache" in GRAPH["ragkit.index"]
    assert {"ragkit.backends.local", "ragkit.backends.openrouter"} <= GRAPH["ragkit.backends"]
    assert "ragkit.backends.wire" in GRAPH["ragkit.backends.server"]
    assert layer_of("ragkit.pipeline") > layer_of("ragkit.index") > layer_of("ragkit.types")


@pytest.mark.parametrize("name", sorted(MODULES))
def test_modules_and_functions_stay_readable(name):
    source = MODULES[name].read_text(encoding="utf-8")
    lines = len(source.splitlines())
    assert lines <= MAX_MODULE_LINES, f"{name} has {lines} lines: split it along its ideas"
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            start = node.lineno
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(getattr(first, "value", None), ast.Constant):
                start = first.end_lineno  # the docstring does not count
            assert node.end_lineno - start <= MAX_FUNCTION_LINES, (
                f"{name}.{node.name} has {node.end_lineno - start} lines of code: give its parts names")


def test_only_config_reads_the_environment():
    readers = [name for name, path in MODULES.items() if name != "ragkit.config"
               and re.search(r"os\.environ|os\.getenv", path.read_text(encoding="utf-8"))]
    assert not readers, f"read settings through ragkit.config, not in {readers}"


def test_one_exception_root_and_every_error_exported():
    import ragkit
    from ragkit import errors

    classes = [getattr(errors, n) for n in errors.__all__]
    assert all(issubclass(c, errors.RagkitError) for c in classes)
    assert all(getattr(ragkit, c.__name__) is c for c in classes), "export every error from ragkit"
    tree = errors.__doc__
    assert all(c.__name__ in tree for c in classes), "draw every error in the tree of ragkit.errors"


def test_readme_layout_names_every_module():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    layout = readme[readme.index("## Layout"):]
    missing = [p.relative_to(PACKAGE).as_posix() for p in MODULES.values()
               if p.name != "__init__.py" and not re.search(rf"^\s+{re.escape(p.name)}\s", layout, re.M)]
    missing += [p.parent.name + "/" for p in MODULES.values() if p.name == "__init__.py" and p.parent != PACKAGE
                and not re.search(rf"^\s+{p.parent.name}/", layout, re.M)]
    assert not missing, f"the README's Layout section does not show {missing}"


def test_readme_configuration_table_matches_config():
    from ragkit import config

    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme[readme.index("## Backends and configuration"):readme.index("### About the local models")]
    named = set(re.findall(r"`([A-Z][A-Z0-9_]+)`", section))
    assert named >= set(config.ENVIRONMENT), f"README lacks {sorted(set(config.ENVIRONMENT) - named)}"
    assert named - set(config.ENVIRONMENT) <= set(), f"README names unknown {sorted(named - set(config.ENVIRONMENT))}"
