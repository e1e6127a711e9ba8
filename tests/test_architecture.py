"""The package's structure: the import layering of pyproject.toml holds, every module is in a layer, no lower
layer names an upper layer's modules or files (strings, paths: what imports do not show), no module imports
another that imports it back (function-level imports included), and lossland uses Lightning through its public
API only."""

import ast
import os
import re
import subprocess
import sys
from pathlib import Path

import grimp
import pytest

ROOT = Path(__file__).resolve().parent.parent


def test_import_layers_contract_is_kept():
    res = subprocess.run([str(Path(sys.executable).parent / "lint-imports"), "--no-cache"], cwd=ROOT,
                         capture_output=True, text=True)
    assert res.returncode == 0, res.stdout[-3000:]
    assert "0 broken" in res.stdout and "2 kept" in res.stdout


def test_no_import_cycles():
    graph = grimp.build_graph("lossland", cache_dir=None)
    edges = {m: set(graph.find_modules_directly_imported_by(m)) for m in graph.modules}

    def owner(m):  # a package and its own modules are one unit (lossland.data imports lossland.data.base)
        return m

    # Tarjan's strongly connected components: any component of more than one module is a cycle.
    index, low, stack, on, comps, counter = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in edges.get(v, ()):
            if w.startswith(v + ".") or v.startswith(w + "."):
                continue  # a package's __init__ re-exporting its own submodules
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
                comp.append(owner(w))
                if w == v:
                    break
            if len(comp) > 1:
                comps.append(sorted(comp))

    sys.setrecursionlimit(10000)
    for m in sorted(edges):
        if m not in index:
            visit(m)
    assert comps == [], f"import cycles: {comps}"


def _lightning_private_names() -> set[str]:
    import lightning as L
    import torch
    from lightning.fabric.wrappers import _FabricModule, _FabricOptimizer
    from lightning.pytorch.core.optimizer import LightningOptimizer

    classes = [L.Trainer, L.LightningModule, L.LightningDataModule, L.Fabric, L.Callback, LightningOptimizer,
               _FabricModule, _FabricOptimizer]
    names = {n for c in classes for n in dir(c) if n.startswith("_") and not n.startswith("__")}
    trainer = L.Trainer(logger=False, enable_progress_bar=False, enable_checkpointing=False,
                        enable_model_summary=False)
    names |= {n for n in vars(trainer) if n.startswith("_") and not n.startswith("__")}
    torch_own = set(dir(torch.nn.Module)) | set(vars(torch.nn.Module())) | set(dir(torch.optim.Optimizer))
    return names - torch_own


def test_lightning_is_used_through_its_public_api_only():
    private = _lightning_private_names()
    assert "_checkpoint_connector" in private  # the scan knows what it looks for
    found = []
    for path in sorted((ROOT / "lossland").rglob("*.py")):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.Attribute) and node.attr in private:
                if not (isinstance(node.value, ast.Name) and node.value.id in ("self", "cls")):
                    found.append(f"{path.relative_to(ROOT)}:{node.lineno}: .{node.attr}")
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("lightning"):
                parts = (node.module or "").split(".") + [a.name for a in node.names]
                if any(p.startswith("_") for p in parts):
                    found.append(f"{path.relative_to(ROOT)}:{node.lineno}: from {node.module} import ...")
    assert found == [], "private Lightning members used:\n" + "\n".join(found)


# ------------------------------------------------------------------------------------------- layers and files
try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10: import-linter's own TOML reader
    import tomli as tomllib

PACKAGE = ROOT / "lossland"
_CONTRACTS = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]["contracts"]
LAYERS = [[m.strip() for m in layer.split("|")] for c in _CONTRACTS if c["type"] == "layers" for layer in c["layers"]]
INDEPENDENT = [m for c in _CONTRACTS if c["type"] == "independence" for m in c["modules"]]


def _place(name: str) -> tuple[int, str] | None:
    """(layer index, the contract's module) of a lossland module (0: the top layer); None when in no layer."""
    found = [(i, m) for i, layer in enumerate(LAYERS) for m in layer if name == m or name.startswith(m + ".")]
    return max(found, key=lambda f: len(f[1]), default=None)


def _unit(name: str) -> str | None:
    """The independent unit a module belongs to (a study's package), if any."""
    return next((m for m in INDEPENDENT if name == m or name.startswith(m + ".")), None)


def _module_at(path: Path) -> str | None:
    """The lossland package or module a path points into (None: outside lossland/ or lossland/ itself)."""
    try:
        rel = Path(os.path.normpath(path)).relative_to(PACKAGE)
    except ValueError:
        return None
    parts, here = [], PACKAGE
    for part in rel.parts:
        if (here / part / "__init__.py").exists():
            parts.append(part)
            here = here / part
        else:
            if (here / part).suffix == ".py" and (here / part).exists():
                parts.append(Path(part).stem)
            break
    return ".".join(["lossland", *parts]) if parts else None


def _module_named(dotted: str) -> str | None:
    """The longest prefix of a dotted name that is a lossland module or package."""
    parts = dotted.split(".")
    while len(parts) > 1:
        if _module_at(PACKAGE.joinpath(*parts[1:])) == ".".join(parts) or \
                _module_at(PACKAGE.joinpath(*parts[1:-1], parts[-1] + ".py")) == ".".join(parts):
            return ".".join(parts)
        parts.pop()
    return None


def _path_value(node: ast.AST, file: Path) -> Path | None:
    """The path an expression built from ``__file__`` evaluates to (``Path(__file__)``, ``.parent``,
    ``.parents[k]``, ``.resolve()``, ``/ "name"``, ``os.path.dirname`` / ``os.path.join``); None otherwise."""
    if isinstance(node, ast.Name) and node.id == "__file__":
        return file
    if isinstance(node, ast.Call):
        func = node.func
        name = func.attr if isinstance(func, ast.Attribute) else func.id if isinstance(func, ast.Name) else ""
        if name in ("Path", "PurePath") and len(node.args) == 1:
            return _path_value(node.args[0], file)
        if name in ("resolve", "absolute", "expanduser") and isinstance(func, ast.Attribute):
            return _path_value(func.value, file)
        if name == "dirname" and node.args:
            base = _path_value(node.args[0], file)
            return None if base is None else base.parent
        if name in ("join", "joinpath") and node.args:
            base = _path_value(node.args[0] if name == "join" else func.value, file)
            rest = node.args[1:] if name == "join" else node.args
            if base is not None and all(isinstance(a, ast.Constant) and isinstance(a.value, str) for a in rest):
                return base.joinpath(*(a.value for a in rest))
    if isinstance(node, ast.Attribute) and node.attr == "parent":
        base = _path_value(node.value, file)
        return None if base is None else base.parent
    if isinstance(node, ast.Subscript) and isinstance(node.value, ast.Attribute) and node.value.attr == "parents" \
            and isinstance(node.slice, ast.Constant) and isinstance(node.slice.value, int):
        base = _path_value(node.value.value, file)
        return None if base is None else base.parents[node.slice.value]
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Div) and isinstance(node.right, ast.Constant) \
            and isinstance(node.right.value, str):
        base = _path_value(node.left, file)
        return None if base is None else base / node.right.value
    return None


def _docstrings(tree: ast.AST) -> set[int]:
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) and node.body:
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant):
                out.add(id(first.value))
    return out


def references(source: str, file: Path) -> list[tuple[int, str, str]]:
    """What a module's code names of lossland besides its imports: ``(line, target module, how)`` for a dotted
    name in a string (``resources.files("lossland.studies.x")``, a ``_target_``), a path string into a package
    (``"studies/x/seed.yaml"``), and a path built from ``__file__`` into a package's folder."""
    tree, out = ast.parse(source), []
    docs = _docstrings(tree)

    def visit(node):
        if (value := _path_value(node, file)) is not None:  # the whole expression, not its parts
            if target := _module_at(value):
                out.append((node.lineno, target, f"builds the path {os.path.normpath(value)}"))
            return
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docs:
            text = node.value.replace("-m lossland.cli", "")  # the `lossland` program run as a process: no module
            for dotted in re.findall(r"\blossland(?:\.\w+)+", text):
                if target := _module_named(dotted.rstrip(".")):
                    out.append((node.lineno, target, f"names {dotted!r}"))
            for path in re.findall(r"[\w.-]+(?:/[\w.-]+)+", text):
                parts = Path(path).parts
                parts = parts[1:] if parts[0] == "lossland" else parts
                if len(parts) > 1 and (PACKAGE / parts[0] / "__init__.py").exists() \
                        and (PACKAGE / parts[0] / parts[1]).exists():
                    out.append((node.lineno, _module_at(PACKAGE.joinpath(*parts)), f"names the path {path!r}"))
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(tree)
    return out


def violations(module: str, source: str, file: Path) -> list[str]:
    """References from ``module`` to a module above its layer, to an independent sibling, or to another study."""
    here, unit = _place(module), _unit(module)
    found = []
    for line, target, how in references(source, file):
        there = _place(target)
        if here is None or there is None or target == module or module.startswith(target + "."):
            continue
        upper = there[0] < here[0] or (there[0] == here[0] and there[1] != here[1])
        other_study = unit is not None and _unit(target) not in (None, unit)
        if upper or other_study:
            found.append(f"{file.relative_to(ROOT)}:{line}: {module} {how} ({target}, "
                         f"{'another study' if other_study else 'an upper layer'})")
    return found


def _modules():
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(ROOT).with_suffix("")
        name = ".".join(rel.parts[:-1] if rel.name == "__init__" else rel.parts)
        yield name, path


def test_every_module_is_in_a_layer():
    missing = [name for name, _ in _modules() if name != "lossland" and _place(name) is None]
    assert missing == [], f"modules in no layer of pyproject.toml's contract: {missing}"


def test_no_lower_layer_reads_an_upper_layers_modules_or_files():
    found = [v for name, path in _modules() for v in violations(name, path.read_text(), path)]
    assert found == [], "\n".join(found)


@pytest.mark.parametrize("module, source, expected", [
    ("lossland.paper.data", 'from importlib import resources\n'
                            'resources.files("lossland.studies.connect") / "seed.yaml"', "lossland.studies.connect"),
    ("lossland.paper.data", 'f"lossland.studies.{study}"', "lossland.studies"),
    ("lossland.paper.data", 'open("lossland/studies/nas/seed.yaml")', "lossland.studies.nas"),
    ("lossland.measure.slice", 'Path(__file__).resolve().parents[1] / "studies" / "optim" / "seed.yaml"',
     "lossland.studies.optim"),
    ("lossland.records", 'os.path.join(os.path.dirname(__file__), "commands", "lab.py")', "lossland.commands.lab"),
    ("lossland.studies.sphere.phases", 'Path(__file__).parent.parent / "connect" / "seed.yaml"',
     "lossland.studies.connect"),
    ("lossland.build", 'TARGET = "lossland.studies.optim.functions.Saddle"', "lossland.studies.optim.functions"),
])
def test_the_file_check_catches_a_lower_layer_reading_upward(module, source, expected):
    file = ROOT / (module.replace(".", "/") + ".py")
    found = violations(module, source, file)
    assert len(found) == 1 and f"({expected}," in found[0], found


@pytest.mark.parametrize("module, source", [
    ("lossland.studies.connect.seed", 'resources.files("lossland.studies.connect") / "seed.yaml"'),  # its own
    ("lossland.studies.connect.seed", 'load("lossland.paper.data")'),                                # below
    ("lossland.config", 'Path(__file__).resolve().parent.parent / "conf"'),                           # not a package
    ("lossland.commands.paper", 'Path(__file__).resolve().parents[2] / "sweeps"'),
    ("lossland.paper.data", '"""Reads lossland/studies/<study>/seed.yaml (a docstring names it)."""'),
])
def test_the_file_check_allows_reading_down_and_within(module, source):
    assert violations(module, source, ROOT / (module.replace(".", "/") + ".py")) == []


def test_hydras_plugin_discovery_and_reading_records_do_not_import_lightning():
    """Hydra imports every ``hydra_plugins`` module at start-up in every command (``lab.py`` too, which trains no
    Lightning module), and ``lossland.runs`` reads records: neither pulls in Lightning (about 3 s per process)."""
    code = ("import sys; import hydra_plugins.lossland_launchers, hydra_plugins.lossland_sweeper, "
            "hydra_plugins.lossland_phase_boundary, lossland.runs; "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('lightning', 'pytorch_lightning')))")
    res = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-2000:]
    assert res.stdout.strip() == "[]", res.stdout[:500]
