"""Layout rules: no import cycle, mapo_env below mapo_agent, no asset trained at run time, no dangling docs."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("mapo_env", "mapo_agent")


def modules() -> dict[str, Path]:
    found = {}
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            parts = path.relative_to(ROOT).with_suffix("").parts
            found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


def top_level_imports(path: Path, name: str, known: set[str]) -> set[str]:
    """Project modules imported when ``name`` is imported (module-level statements, not inside functions)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    out = set()
    for node in tree.body:
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            continue
        for sub in ast.walk(node) if isinstance(node, (ast.If, ast.Try)) else [node]:
            targets = []
            if isinstance(sub, ast.Import):
                targets = [a.name for a in sub.names]
            elif isinstance(sub, ast.ImportFrom):
                base = sub.module or ""
                if sub.level:
                    anchor = package.split(".")[: len(package.split(".")) - sub.level + 1]
                    base = ".".join(anchor + ([base] if base else []))
                submodules = [f"{base}.{a.name}" for a in sub.names if f"{base}.{a.name}" in known]
                targets = submodules or [base]  # `from pkg import submodule` needs the submodule, not pkg's body
            out |= {t for t in targets if t in known}
    parents = {".".join(name.split(".")[:i]) for i in range(1, name.count(".") + 1)}
    return out - parents - {name}  # a parent package is being imported already: not an edge


def test_no_import_cycle_and_env_never_imports_agent():
    found = modules()
    graph = {name: top_level_imports(path, name, set(found)) for name, path in found.items()}
    for name, deps in graph.items():
        if name.startswith("mapo_env"):
            assert not any(d.startswith("mapo_agent") for d in deps), f"{name} imports the agent: {deps}"
    state: dict[str, int] = {}

    def visit(node: str, stack: list[str]) -> None:
        state[node] = 1
        for dep in graph[node]:
            if state.get(dep) == 1:
                cycle = stack[stack.index(dep) :] + [dep] if dep in stack else [node, dep]
                pytest.fail(f"import cycle: {' -> '.join(cycle)}")
            if dep not in state:
                visit(dep, stack + [dep])
        state[node] = 2

    for name in graph:
        if name not in state:
            visit(name, [name])


@pytest.mark.parametrize("package", PACKAGES)
def test_no_runtime_module_trains_an_asset(package):
    """Recipes that build bundled assets live in tools/; the runtime only loads them."""
    offenders = []
    for path in (ROOT / package).rglob("*.py"):
        text = path.read_text(encoding="utf-8")
        if "from tools" in text or "import tools" in text:
            offenders.append(f"{path.relative_to(ROOT)} imports tools/")
        if package == "mapo_env" and re.search(r"\.backward\(|torch\.optim\.", text):
            offenders.append(f"{path.relative_to(ROOT)} trains something")
        if path.parent.name in ("policy", "alignment") and re.search(r"torch\.optim\.|train_from_iterator", text):
            offenders.append(f"{path.relative_to(ROOT)} builds an asset")
    assert not offenders


def test_docs_cite_only_files_of_the_repository():
    cited = re.compile(r"\b([A-Z][A-Z_]+\.md)\b")
    missing = []
    for path in [
        *ROOT.glob("mapo_*/**/*.py"),
        *ROOT.glob("docs/*.md"),
        ROOT / "README.md",
        *ROOT.glob("tools/**/*.py"),
    ]:
        for name in cited.findall(path.read_text(encoding="utf-8")):
            if not any(ROOT.glob(f"**/{name}")):
                missing.append(f"{path.relative_to(ROOT)} cites {name}")
    assert not missing
