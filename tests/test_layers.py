"""The package's shape (DESIGN.md section 3): imports only go down, nothing imports the
CLI, and a clone's uncompiled source folder never passes for the installed package."""

import ast
import os
import shutil
import subprocess
import sys
from importlib.machinery import EXTENSION_SUFFIXES
from pathlib import Path

import leepfast

PACKAGE = Path(leepfast.__file__).parent


def _module_name(path):
    rel = path.relative_to(PACKAGE.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _imports(path):
    """Package modules imported by a module: (name, at module level?)."""
    name = _module_name(path)
    is_package = path.name == "__init__.py"
    tree = ast.parse(path.read_text())
    top = set(id(node) for node in tree.body)
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = name.split(".")
                base = base[: len(base) - node.level + (1 if is_package else 0)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if target.startswith("leepfast"):
                if node.module:  # `from . import x` imports x, not the package
                    found.append((target, id(node) in top))
                for alias in node.names:
                    found.append((f"{target}.{alias.name}", id(node) in top))
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("leepfast"):
                    found.append((alias.name, id(node) in top))
    return found


def _modules():
    return {
        _module_name(p): p for p in PACKAGE.rglob("*.py") if "__pycache__" not in p.parts
    }


def test_no_module_imports_the_cli():
    offenders = [
        name
        for name, path in _modules().items()
        if name not in ("leepfast.cli", "leepfast.__main__")
        and any(t == "leepfast.cli" for t, _ in _imports(path))
    ]
    assert offenders == []


def test_module_level_imports_have_no_cycle():
    modules = _modules()
    graph = {
        name: {t for t, top in _imports(path) if top and t in modules and t != name}
        for name, path in modules.items()
    }
    # a package's __init__ re-exports its children: an edge child -> parent package is
    # only a cycle if the parent imports the child at module level too (checked below)
    state, cycles = {}, []

    def visit(node, stack):
        state[node] = "open"
        for nxt in sorted(graph[node]):
            if state.get(nxt) == "open":
                cycles.append(stack[stack.index(nxt) :] + [nxt])
            elif nxt not in state:
                visit(nxt, stack + [nxt])
        state[node] = "done"

    for node in sorted(graph):
        if node not in state:
            visit(node, [node])
    assert cycles == []


def _fake_clone(tmp_path, with_build):
    """A clone's layout (setup.py, src_cython/, leepfast/) around a copy of the package,
    with or without the compiled module (an in-place build has it)."""
    (tmp_path / "setup.py").write_text("")
    (tmp_path / "src_cython").mkdir()
    compiled = tuple("_kernels" + s for s in EXTENSION_SUFFIXES)
    shutil.copytree(
        PACKAGE,
        tmp_path / "leepfast",
        ignore=lambda d, names: (
            [n for n in names if n.startswith(compiled)] if not with_build else []
        ),
    )
    return tmp_path


def test_the_uncompiled_source_folder_says_so(tmp_path, python_c):
    clone = _fake_clone(tmp_path, with_build=False)
    env = {k: v for k, v in os.environ.items() if k != "LEEPFAST_ALLOW_SOURCE_TREE"}
    p = python_c("import leepfast", cwd=clone, env=env)
    assert p.returncode == 1
    last = p.stderr.strip().splitlines()[-1]
    assert last.startswith(
        f"ImportError: leepfast: this is the source folder {clone / 'leepfast'}, whose "
        f"compiled backend is not built"
    ), p.stderr
    assert "pip install -e ." in last
    env["LEEPFAST_ALLOW_SOURCE_TREE"] = "1"
    p = python_c("import leepfast; print(leepfast.__file__)", cwd=clone, env=env)
    assert p.returncode == 0 and p.stdout.strip() == str(clone / "leepfast/__init__.py")


def test_an_in_place_build_imports_from_its_folder(tmp_path):
    clone = _fake_clone(tmp_path, with_build=True)
    p = subprocess.run(
        [sys.executable, "-c", "import leepfast; print(leepfast.__file__)"],
        cwd=clone,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert p.returncode == 0, p.stderr
    assert p.stdout.strip() == str(clone / "leepfast/__init__.py")
