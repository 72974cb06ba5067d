"""The import structure: layers with one direction, no cycle.

Every module of ``finetec`` sits in one layer; a module may import modules of its own layer or of
a lower one, never of a higher one. The layers, lowest first::

    0  errors, fileio, console, cpu, version,    foundation: no finetec imports above it
       backends                                 (backends: the inference backends' names)
    1  layouts, metrics, zoo                    skeleton definitions; metric functions; the model zoo's index
    2  data                                     readers -> Sample -> pipeline, corruption, fillers
    3  models                                   networks; a model package builds and loads its own checkpoints
    4  engine                                   training, evaluation, training state
    5  benchmark, api, streaming, export, viz   applications of trained models; result plots
    6  commands, cli, __main__, finetec         the command line and the package root (finetec.load)

Imports inside functions count like imports at module top (the test walks the whole syntax tree).
Imports sit at module top, except where a command keeps ``finetec --help`` and start-up fast
(``commands/*`` and ``cli.py`` import their heavy modules inside the function that runs the
command, and the package root imports the API inside :func:`finetec.load`); third-party packages
that only some features need (matplotlib, onnx, onnxruntime, openvino, scipy, tensorboard, tqdm) are
imported where they are used.
No two modules import each other, directly or through others (no cycle), except the pairs in
:data:`KNOWN_CYCLES` (each with its reason; the test fails when one of them is gone, so the list
shrinks as they are fixed).
"""
from __future__ import annotations

import ast
from pathlib import Path

import pytest


SRC = Path(__file__).resolve().parents[1] / "src"
PKG = SRC / "finetec"

LAYERS: dict[str, int] = {
    "errors": 0, "fileio": 0, "console": 0, "cpu": 0, "version": 0, "backends": 0,
    "layouts": 1, "metrics": 1, "zoo": 1,
    "data": 2,
    "models": 3,
    "engine": 4,
    "benchmark": 5, "api": 5, "streaming": 5, "export": 5, "viz": 5,
    "commands": 6, "cli": 6, "__main__": 6, "": 6,
}


# A dataset and its memory-mapped folder format open each other: SkeletonDataset.load/save and
# pickling go through the store, and the store builds a SkeletonDataset. Not yet untangled.
KNOWN_CYCLES: list[list[str]] = []


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for p in sorted(PKG.rglob("*.py"))}


def _imports(name: str, path: Path, known: set[str]) -> set[str]:
    """finetec modules imported anywhere in ``path`` (``from pkg import mod`` counts as ``pkg.mod``
    when ``pkg.mod`` is a module)."""
    out: set[str] = set()
    package = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[:len(package) - node.level + 1]
                mod = ".".join(base + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            targets = [f"{mod}.{a.name}" if f"{mod}.{a.name}" in known else mod for a in node.names]
        else:
            continue
        for t in targets:
            if t == "finetec" or t.startswith("finetec."):
                while t not in known and "." in t:
                    t = t.rsplit(".", 1)[0]
                if t != name:
                    out.add(t)
    return out


def _graph() -> dict[str, set[str]]:
    mods = _modules()
    known = set(mods)
    return {name: _imports(name, path, known) for name, path in mods.items()}


def layer_of(module: str) -> int:
    parts = module.split(".")
    key = parts[1] if len(parts) > 1 else ""
    if key not in LAYERS:
        raise KeyError(f"{module}: no layer assigned; add its top-level name to LAYERS in tests/test_layers.py")
    return LAYERS[key]


def test_every_module_has_a_layer():
    for name in _modules():
        layer_of(name)


def test_no_upward_import():
    bad = sorted(f"{src} (layer {layer_of(src)}) imports {dst} (layer {layer_of(dst)})"
                 for src, dsts in _graph().items() for dst in dsts if layer_of(dst) > layer_of(src))
    assert not bad, "upward imports:\n" + "\n".join(bad)


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    found: list[list[str]] = []
    counter = [0]

    def visit(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                found.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_no_import_cycle():
    cycles = _cycles(_graph())
    new = [c for c in cycles if c not in KNOWN_CYCLES]
    assert not new, "import cycles:\n" + "\n".join(" <-> ".join(c) for c in new)
    gone = [c for c in KNOWN_CYCLES if c not in cycles]
    assert not gone, f"no longer a cycle, remove it from KNOWN_CYCLES: {gone}"


# Modules of the library (not commands) that still import finetec modules inside functions, and why.
LAZY_IMPORTS: dict[str, str] = {}
# Where imports stay inside functions on purpose: the command line's start-up (`finetec --help`
# imports every command module) and the package root (`import finetec` stays light).
STARTUP = ("finetec", "finetec.cli", "finetec.__main__")


def _function_level_imports(path: Path) -> list[int]:
    lines = []
    for fn in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef)):
            for node in ast.walk(fn):
                if isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "finetec":
                    lines.append(node.lineno)
                elif isinstance(node, ast.Import) and any(a.name.split(".")[0] == "finetec" for a in node.names):
                    lines.append(node.lineno)
    return lines


def test_imports_sit_at_module_top():
    """Outside the command line (commands/, cli.py, the package root) a module imports the finetec
    modules it needs at its top, where a reader sees its dependencies."""
    bad = []
    for name, path in _modules().items():
        if name in STARTUP or name.startswith("finetec.commands") or name in LAZY_IMPORTS:
            continue
        bad += [f"{path.relative_to(SRC)}:{line}" for line in _function_level_imports(path)]
    assert not bad, "finetec imports inside functions (move them to the module top):\n" + "\n".join(bad)
    stale = [n for n in LAZY_IMPORTS if not _function_level_imports(_modules()[n])]
    assert not stale, f"no function-level import left, remove from LAZY_IMPORTS: {stale}"


def test_checker_sees_upward_edges_and_cycles():
    """The checks themselves can fail: an upward edge and a two-module cycle are found."""
    assert layer_of("finetec.models.gcn") < layer_of("finetec.engine.train")
    assert _cycles({"a": {"b"}, "b": {"a"}, "c": {"a"}}) == [["a", "b"]]
    assert _cycles({"a": {"b"}, "b": set()}) == []


def test_function_level_imports_are_seen(tmp_path):
    """Imports inside functions count like imports at the top: the walk covers the whole tree."""
    f = tmp_path / "mod.py"
    f.write_text("import os\n\ndef f():\n    from finetec.engine import train\n    import finetec.viz\n")
    known = {"finetec.engine", "finetec.engine.train", "finetec.viz", "finetec.models.mod"}
    assert _imports("finetec.models.mod", f, known) == {"finetec.engine.train", "finetec.viz"}


def test_one_device_resolver():
    """finetec.engine.device.resolve_device is the one place that turns a device choice into a
    torch device (training, evaluation, the benchmark and the API use it)."""
    import torch

    from finetec.engine.device import resolve_device
    from finetec.errors import FinetecError

    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    with pytest.raises(FinetecError, match="unknown device"):
        resolve_device("gpu0")
    if not torch.cuda.is_available():
        with pytest.raises(FinetecError, match="no CUDA GPU"):
            resolve_device("cuda", 0)
    for path in PKG.rglob("*.py"):
        text = path.read_text(encoding="utf-8")
        if path.name != "device.py":
            assert '"cuda" if torch.cuda.is_available() else "cpu"' not in text, \
                f"{path}: pick devices with resolve_device"
