"""The shape of the house: every deepromo module imports only its own layer or the ones below it, no module
imports another in a circle, and ``import deepromo`` stays cheap."""

import ast
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import ROOT

PACKAGE = ROOT / "deepromo"
# Layers from the bottom up (DESIGN §2): a module may import its own layer and the layers before it.
LAYERS = (("data", "metrics"), ("reporting",), ("decide", "sim"), ("models",), ("tasks",), ("serving",), ("jobs",))
RANK = {name: rank for rank, names in enumerate(LAYERS) for name in names}


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def deepromo_imports(path: Path) -> set[str]:
    """Every deepromo module ``path`` imports, at module level or inside a function."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.startswith("deepromo"))
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("deepromo"):
            for alias in node.names:  # "from deepromo.x import y" may name a module y
                candidate = f"{node.module}.{alias.name}"
                found.add(candidate if candidate in MODULES else node.module)
    return found


MODULES = {module_name(p): p for p in PACKAGE.rglob("*.py")}
GRAPH = {name: deepromo_imports(path) & set(MODULES) for name, path in MODULES.items()}


def layer(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[1] in RANK else None


def test_every_package_has_a_layer():
    top = {p.name for p in PACKAGE.iterdir() if p.is_dir() and (p / "__init__.py").exists()}
    assert top == set(RANK), f"packages without a layer: {sorted(top - set(RANK))}"
    stray = sorted(p.name for p in PACKAGE.glob("*.py") if p.name != "__init__.py")
    assert not stray, f"modules outside every package: {stray}"


def test_nothing_imports_upward():
    upward = [(m, dep) for m, deps in GRAPH.items() for dep in deps
              if layer(m) and layer(dep) and RANK[layer(dep)] > RANK[layer(m)]]
    assert not upward, "\n".join(f"{m} imports {dep} (layer above)" for m, dep in upward)


def test_no_import_cycles():
    from graphlib import CycleError, TopologicalSorter

    graph = {m: {d for d in deps if d != m and not m.startswith(d + ".")} for m, deps in GRAPH.items()}
    try:
        TopologicalSorter(graph).prepare()
    except CycleError as exc:  # pragma: no cover - the message is the point
        pytest.fail(f"import cycle: {' -> '.join(exc.args[1])}")


def loaded_after(code: str) -> set[str]:
    """Top-level packages in ``sys.modules`` after running ``code`` in a fresh interpreter."""
    out = subprocess.run([sys.executable, "-c", f"import sys\n{code}\nprint(' '.join(sorted(sys.modules)))"],
                         capture_output=True, text=True, check=True, cwd=ROOT)
    return {name.split(".")[0] for name in out.stdout.split()}


def test_import_deepromo_loads_no_heavy_library():
    loaded = loaded_after("import deepromo")
    heavy = {"torch", "pytorch_lightning", "lightning", "torch_geometric", "sklearn", "mlflow", "optuna", "hydra"}
    assert not loaded & heavy, sorted(loaded & heavy)


def test_scoring_splc_never_imports_pyg(tmp_path, tiny_world):
    from conftest import tiny_splc

    model, dm = tiny_splc(tiny_world, epochs=0)
    model.save(tmp_path / "splc.ckpt")
    dm.view.frame.head(20).to_parquet(tmp_path / "rows.parquet")
    loaded = loaded_after(f"import deepromo, pandas as pd\nm = deepromo.load_model({str(tmp_path / 'splc.ckpt')!r})\n"
                          f"m.predict_frame(pd.read_parquet({str(tmp_path / 'rows.parquet')!r}))")
    assert "torch_geometric" not in loaded
