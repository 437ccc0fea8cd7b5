"""The package's import graph, read from the source with ``ast``: no circles, and the library
never imports its command line (``derain/cli/`` sits on top of ``derain/``, not below it)."""

from __future__ import annotations

import ast
from pathlib import Path

import derain

PACKAGE = Path(derain.__file__).parent
CLI = "derain.cli"
#: ``python -m derain`` starts the command line: the one module of the library that may.
ENTRY_POINTS = {"derain.__main__"}


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {_module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _targets(module: str, node: ast.Import | ast.ImportFrom) -> set[str]:
    """The package's modules an import statement in ``module`` loads."""
    if isinstance(node, ast.Import):
        names = {alias.name for alias in node.names}
    else:
        if node.level:
            is_package = MODULES[module].name == "__init__.py"
            base = module.split(".")
            base = base[: len(base) - node.level + (1 if is_package else 0)]
            root = ".".join([*base, node.module] if node.module else base)
        else:
            root = node.module or ""
        names = {f"{root}.{alias.name}" for alias in node.names} | {root}
        names = {n for n in names if n in MODULES} or {root}
    found = set()
    for name in names:
        while name and name not in MODULES:  # a name inside a module: the module
            name = name.rpartition(".")[0]
        if name:
            found.add(name)
    return found


def _imports(module: str, *, type_only: bool) -> set[str]:
    """What ``module`` imports, at the top or inside functions (a lazy import still ties two
    modules); those under ``if TYPE_CHECKING:`` only with ``type_only``."""
    tree = ast.parse(MODULES[module].read_text(encoding="utf-8"))
    found: set[str] = set()

    def visit(node: ast.AST) -> None:
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            found.update(_targets(module, node))
            return
        if isinstance(node, ast.If) and _is_type_checking(node) and not type_only:
            for child in node.orelse:
                visit(child)
            return
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(tree)
    found.discard(module)
    return found


def _circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected groups of more than one module (Tarjan's algorithm)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    groups: list[list[str]] = []

    def connect(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for nxt in graph[node]:
            if nxt not in index:
                connect(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            group = []
            while True:
                member = stack.pop()
                group.append(member)
                if member == node:
                    break
            if len(group) > 1:
                groups.append(sorted(group))

    for node in sorted(graph):
        if node not in index:
            connect(node)
    return groups


def test_the_graph_is_read() -> None:
    """The reader finds known edges, type-only ones apart, and circles (so the checks can
    fail)."""
    assert "derain.batch" in _imports("derain.cli.run", type_only=False)
    assert "derain.engines" in _imports("derain.inference", type_only=False)
    assert "derain.inference" not in _imports("derain.video", type_only=False)
    assert "derain.inference" in _imports("derain.video", type_only=True)
    assert _circles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_no_import_circles() -> None:
    graph = {m: _imports(m, type_only=False) for m in MODULES}
    assert _circles(graph) == []


def test_the_library_never_imports_the_command_line() -> None:
    back = {
        (module, target)
        for module in MODULES
        if not (module == CLI or module.startswith(CLI + ".") or module in ENTRY_POINTS)
        for target in _imports(module, type_only=True)
        if target == CLI or target.startswith(CLI + ".")
    }
    assert back == set()
