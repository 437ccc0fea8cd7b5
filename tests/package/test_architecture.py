"""The package's import graph, read from the source with ``ast``: no circles (type-only
imports counted too), and the rules of the rooms (docs/architecture.md): the command line sits
on top, ``io/`` knows no model, ``models/`` knows no engine, the ground knows nothing above it,
and the faces (:mod:`derain.weights`, :mod:`derain.io`) are for users, not for the package."""

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
        # ``from pkg import mod`` loads pkg.mod; ``from mod import name`` loads mod
        names = {f"{root}.{alias.name}" for alias in node.names} & MODULES.keys() or {root}
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


#: The ground: errors, files written safely, run records; they import only each other.
GROUND = {
    "derain._defaults",
    "derain._lazy",
    "derain._moved",
    "derain._version",
    "derain.atomic",
    "derain.errors",
    "derain.record",
}
#: The faces for users: code inside the package imports the module that defines a name.
FACES = {"derain.weights", "derain.io"}
#: Rooms and the rooms they must not import.
FORBIDDEN = {
    "derain.io": ("derain.inference", "derain.engines", "derain.models", "derain.scoring"),
    "derain.models": ("derain.engines", "derain.inference", "derain.io"),
    "derain.engines": ("derain.inference", "derain.io", "derain.scoring"),
}


def _in(module: str, room: str) -> bool:
    return module == room or module.startswith(room + ".")


def _graph() -> dict[str, set[str]]:
    return {m: _imports(m, type_only=True) for m in MODULES}


def test_the_graph_is_read() -> None:
    """The reader finds known edges, type-only ones apart, and circles (so the checks can
    fail)."""
    assert "derain.batch" in _imports("derain.cli.run", type_only=False)
    assert "derain.engines" in _imports("derain.inference", type_only=False)
    assert "derain.io.png16" in _imports("derain.io.writing", type_only=False)
    assert "derain.io" not in _imports("derain.io.writing", type_only=False)
    assert "derain.io.writing" not in _imports("derain.io", type_only=False)
    assert "derain.io.writing" in _imports("derain.io", type_only=True)
    assert _circles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_no_import_circles_type_only_imports_counted() -> None:
    assert _circles(_graph()) == []


def test_the_library_never_imports_the_command_line() -> None:
    back = {
        (module, target)
        for module, targets in _graph().items()
        if not (_in(module, CLI) or module in ENTRY_POINTS)
        for target in targets
        if _in(target, CLI)
    }
    assert back == set()


def test_rooms_import_only_what_lies_below_them() -> None:
    """``io/`` reads and writes files for any model; ``models/`` defines networks and loads
    weights for any engine; the engines run a network for the front object."""
    wrong = {
        (module, target)
        for module, targets in _graph().items()
        for room, forbidden in FORBIDDEN.items()
        if _in(module, room)
        for target in targets
        if any(_in(target, f) for f in forbidden)
    }
    assert wrong == set()


def test_the_ground_imports_only_the_ground() -> None:
    wrong = {(m, t) for m in GROUND for t in _imports(m, type_only=True) if t not in GROUND}
    assert wrong == set()


def test_the_package_imports_defining_modules_not_the_faces() -> None:
    users = {
        (module, face)
        for module, targets in _graph().items()
        if module != "derain" and module not in FACES
        for face in FACES & targets
    }
    assert users == set()


def test_imports_inside_the_package_are_relative() -> None:
    absolute = set()
    for module, path in MODULES.items():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                absolute |= {(module, a.name) for a in node.names if _in(a.name, "derain")}
            elif (
                isinstance(node, ast.ImportFrom)
                and not node.level
                and _in(node.module or "", "derain")
            ):
                absolute.add((module, node.module or ""))
    assert absolute == set()


#: The longest a function may be, from ``def`` to the end of its body: longer ones get parts.
MAX_FUNCTION_LINES = 80


def test_no_function_is_longer_than_the_limit() -> None:
    long = {
        f"{module}.{node.name}: {node.end_lineno - node.lineno + 1} lines"
        for module, path in MODULES.items()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8")))
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))
        and (node.end_lineno or node.lineno) - node.lineno + 1 > MAX_FUNCTION_LINES
    }
    assert long == set()
