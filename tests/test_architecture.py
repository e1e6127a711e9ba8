"""The package's structure: the import layering of pyproject.toml holds, no module imports another that
imports it back (function-level imports included), and lossland uses Lightning through its public API only."""

import ast
import subprocess
import sys
from pathlib import Path

import grimp

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
