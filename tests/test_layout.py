"""The package layout keeps its promises: no import cycles, dependencies pointing one way (tools -> runtime, never
back), heavy or optional libraries out of the runtime import path, no dora in model_core, docs inside the repo."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

from dfn_testing import REPO

PKG = "dora_funasr_nano"
SOURCES = {"model_core": REPO / "model_core", "nodes": REPO / "nodes"}
OPTIONAL = ("httpx", "matplotlib", "rich", "sacrebleu", "jiwer", "psutil", "torch")


def modules() -> dict[str, Path]:
    """Dotted module name (dora_funasr_nano.model_core.fun_asr_nano.api) -> file."""
    found = {}
    for top, root in SOURCES.items():
        for path in root.rglob("*.py"):
            parts = path.relative_to(root).with_suffix("").parts
            name = ".".join((PKG, top, *parts))
            found[name.removesuffix(".__init__")] = path
    return found


def module_level_imports(name: str, path: Path) -> set[str]:
    """Absolute names of what `name` imports when it is imported: module-level and class-level statements, not
    those inside functions (deferred on purpose) or under `if TYPE_CHECKING:`."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    out: set[str] = set()

    def visit(nodes: list[ast.stmt]) -> None:
        for node in nodes:
            if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
                continue
            if isinstance(node, ast.Import):
                out.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                    source = f"{base}.{node.module}" if node.module else base
                else:
                    source = node.module or ""
                out.add(source)
                out.update(f"{source}.{alias.name}" for alias in node.names)  # `from pkg import module`
            elif isinstance(node, ast.ClassDef | ast.If | ast.Try | ast.With):
                visit([n for n in ast.iter_child_nodes(node) if isinstance(n, ast.stmt)])

    visit(ast.parse(path.read_text(encoding="utf-8")).body)
    return out


def graph() -> dict[str, set[str]]:
    mods = modules()
    return {name: {m for m in module_level_imports(name, path) if m in mods} - {name} for name, path in mods.items()}


def test_there_is_no_import_cycle():
    edges = graph()
    state: dict[str, int] = {}  # 1 = on the current path, 2 = done
    cycles: list[list[str]] = []

    def walk(node: str, path: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(edges[node]):
            if state.get(nxt) == 1:
                cycles.append(path[path.index(nxt) :] + [nxt] if nxt in path else [node, nxt])
            elif nxt not in state:
                walk(nxt, path + [nxt])
        state[node] = 2

    for node in sorted(edges):
        if node not in state:
            walk(node, [node])
    # a package's __init__ importing its own submodules is not a cycle unless a submodule imports the __init__ back
    assert cycles == [], cycles


def test_runtime_does_not_depend_on_tools_or_optional_libraries():
    mods = modules()
    tools = f"{PKG}.model_core.tools"
    for name, path in mods.items():
        if not name.startswith(f"{PKG}.model_core") or name.startswith(tools):
            continue
        imports = module_level_imports(name, path)
        assert not any(m.startswith(tools) for m in imports), f"{name} imports a tool"
        assert not any(m.split(".")[0] in ("dora", "pyarrow") for m in imports), f"{name} imports dora/pyarrow"
        heavy = {m.split(".")[0] for m in imports} & set(OPTIONAL)
        if name.endswith("translation.remote"):
            heavy -= {"httpx"}  # the remote translator is the one runtime module that needs an HTTP client
        assert not heavy, f"{name} imports {heavy} when it is imported"
    for name in mods:
        if name.startswith(f"{PKG}.nodes"):  # nodes reach tools only through model_core's runtime
            assert not any(m.startswith(tools) for m in module_level_imports(name, mods[name])), name


def test_importing_the_runtime_loads_none_of_the_optional_libraries():
    """Really imported, in a fresh interpreter: every runtime module that does not import mlx-lm (whose own
    package import brings transformers and rich with it) and is not the remote translator."""
    mods = modules()
    tools = f"{PKG}.model_core.tools"
    light = [
        n for n in mods
        if n.startswith(f"{PKG}.model_core") and not n.startswith(tools) and not n.endswith("translation.remote")
        and not any(m.startswith("mlx_lm") for m in module_level_imports(n, mods[n]))
        and not any(m.startswith(f"{PKG}.model_core.fun_asr_nano") for m in module_level_imports(n, mods[n]))
        and ".fun_asr_nano" not in n
    ]  # fmt: skip
    code = (
        "import importlib, sys\n"
        f"for name in {light!r}: importlib.import_module(name)\n"
        f"print(sorted(m for m in sys.modules if m.split('.')[0] in {OPTIONAL!r} or m.startswith({tools!r})))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert len(light) >= 12, light
    assert out.stdout.strip() == "[]", out.stdout


def test_docstrings_point_only_inside_the_repository():
    for name, path in modules().items():
        text = path.read_text(encoding="utf-8")
        assert "design.md" not in text and "../shared" not in text, name


def test_packages_are_discovered():
    """setup.py finds every folder with an __init__.py, so a new subpackage ships without editing a list."""
    sys.path.insert(0, str(REPO))
    try:
        from setuptools import find_packages

        found = set(find_packages(str(REPO), include=["model_core*", "nodes*"]))
    finally:
        sys.path.remove(str(REPO))
    folders = {
        ".".join(p.parent.relative_to(REPO).parts)
        for top in SOURCES.values()
        for p in top.rglob("__init__.py")
    }
    assert folders == found and {"model_core.fun_asr_nano.backends", "model_core.translation"} <= found
