"""The package's shape: no import cycles among its modules (lazy imports inside functions
count too), and a core that never imports Qt or napari."""

import ast
from pathlib import Path

import networkx as nx
import pytest

import napari_pgdiffseg

PKG = Path(napari_pgdiffseg.__file__).parent
GUI_MODULES = ("napari", "qtpy", "PyQt5", "PyQt6", "PySide2", "PySide6", "magicgui", "vispy", "superqt")


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(PKG.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _imports(path: Path) -> set[str]:
    """Absolute names of everything `path` imports, at module level or inside functions."""
    name = _module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                anchor = anchor[: len(anchor) - (node.level - 1)]
                base = ".".join(anchor + ([base] if base else []))
            out.add(base)
            out.update(f"{base}.{a.name}" for a in node.names)  # `from . import x` names a module
    return out


def _graph() -> nx.DiGraph:
    modules = {_module_name(p): p for p in PKG.rglob("*.py")}
    g = nx.DiGraph()
    g.add_nodes_from(modules)
    for name, path in modules.items():
        for imp in _imports(path):
            if imp in modules and imp != name and not name.startswith(imp + "."):
                g.add_edge(name, imp)  # a package's own __init__ imported by its children is not a cycle
    return g


def test_the_graph_sees_lazy_imports():
    g = _graph()
    assert g.has_edge("napari_pgdiffseg.core.batch", "napari_pgdiffseg.core.filejob")
    assert g.has_edge("napari_pgdiffseg.core.batch", "napari_pgdiffseg.core.distributed")  # inside a function


def test_no_import_cycles_among_the_package_modules():
    cycles = list(nx.simple_cycles(_graph()))
    assert cycles == [], "import cycles: " + "; ".join(" -> ".join(c + c[:1]) for c in cycles)


@pytest.mark.parametrize("path", sorted((PKG / "core").glob("*.py")), ids=lambda p: p.name)
def test_core_imports_no_gui(path):
    gui = sorted(i for i in _imports(path) if i.split(".")[0] in GUI_MODULES)
    assert gui == [], f"{path.name} imports {gui}: the core must run without Qt/napari"


def test_the_package_exports_the_cores_api_lazily():
    import subprocess
    import sys

    from napari_pgdiffseg import core

    assert sorted(napari_pgdiffseg.__all__) == sorted(core.__all__)
    assert all(getattr(napari_pgdiffseg, n) is getattr(core, n) for n in core.__all__)
    # Importing the package (what napari does to dock a widget) does not import torch or diffusers.
    code = "import sys, napari_pgdiffseg, napari_pgdiffseg._dock; print('torch' in sys.modules, 'diffusers' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "False"]
