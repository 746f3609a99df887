"""The house: the packages of lesionseg import each other without a cycle, and nothing outside cli/ imports
``lesionseg.cli``. Every import is read with ast, the ones inside functions included (a function-local
import speeds up the CLI; it must not hide an arrow that runs up)."""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src" / "lesionseg"
# The floors of STYLE.md ("The house"), top of the list = bottom floor; a floor imports only floors before
# it. models/ (the bundled weights, read by infer and cli) and phantom/ (synthetic data, written through io)
# are not named there: each sits just above what it needs.
FLOORS = [
    "config",
    "models",
    "io",
    "phantom",
    "preprocess",
    "augment",
    "data",
    "nets",
    "losses",
    "metrics",
    "report",
    "infer",
    "train",
    "evaluate",
    "cli",
]
PACKAGES = sorted(FLOORS)


def module_name(path: Path) -> str:
    parts = path.relative_to(SRC.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported_modules(path: Path) -> list[str]:
    """Every ``lesionseg...`` module ``path`` imports, at any depth of the file (relative imports resolved;
    ``from pkg import name`` counts as importing ``pkg.name`` when that is a module, else ``pkg``)."""
    tree = ast.parse(path.read_text(), filename=str(path))
    package = module_name(path) if path.name == "__init__.py" else module_name(path).rpartition(".")[0]
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                anchor = anchor[: len(anchor) - (node.level - 1)]
                base = ".".join([*anchor, base] if base else anchor)
            for alias in node.names:
                candidate = f"{base}.{alias.name}"
                found.append(candidate if is_module(candidate) else base)
    return [name for name in found if name == "lesionseg" or name.startswith("lesionseg.")]


def is_module(name: str) -> bool:
    relative = Path(*name.split(".")[1:]) if "." in name else Path()
    return (SRC / relative).with_suffix(".py").is_file() or (SRC / relative / "__init__.py").is_file()


def package_of(module: str) -> str | None:
    """The top-level package of a module (``lesionseg.data.manifest`` -> ``data``); None for the modules at
    the root (``lesionseg`` and its facade ``lesionseg.api``, ``lesionseg.errors``)."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[1] in PACKAGES else None


def source_files() -> list[Path]:
    return sorted(SRC.rglob("*.py"))


def package_graph() -> dict[str, dict[str, list[str]]]:
    """package -> imported package -> the modules that make the arrow ("data.cache -> preprocess.x")."""
    graph: dict[str, dict[str, list[str]]] = {p: {} for p in PACKAGES}
    for path in source_files():
        source = module_name(path)
        src_pkg = package_of(source)
        if src_pkg is None:
            continue
        for target in imported_modules(path):
            dst_pkg = package_of(target)
            if dst_pkg is not None and dst_pkg != src_pkg:
                graph[src_pkg].setdefault(dst_pkg, []).append(f"{source} -> {target}")
    return graph


def find_cycle(graph: dict[str, dict[str, list[str]]]) -> list[str] | None:
    """One cycle of packages (first node repeated at the end), or None."""
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt) :] + [nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def test_the_reader_sees_function_local_and_relative_imports(tmp_path: Path) -> None:
    """The parser itself, on the real tree: a known function-local import is found."""
    seen = imported_modules(SRC / "cli" / "segment.py")
    assert any(name.startswith("lesionseg.infer") for name in seen), seen
    assert find_cycle({"a": {"b": ["x"]}, "b": {"c": ["y"]}, "c": {"a": ["z"]}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b": ["x"]}, "b": {}}) is None


def test_no_package_cycle() -> None:
    graph = package_graph()
    cycle = find_cycle(graph)
    if cycle:
        arrows = [
            f"  {a} -> {b}: {', '.join(sorted(set(graph[a][b])))}"
            for a, b in zip(cycle, cycle[1:], strict=False)
        ]
        raise AssertionError("package cycle " + " -> ".join(cycle) + "\n" + "\n".join(arrows))


def test_floors_import_only_downward() -> None:
    on_disk = {p.name for p in SRC.iterdir() if (p / "__init__.py").exists()}
    assert on_disk <= set(FLOORS), f"subpackages on no floor: {sorted(on_disk - set(FLOORS))}"
    graph = package_graph()
    upward = [
        f"{a} -> {b}: {', '.join(sorted(set(graph[a][b])))}"
        for a in FLOORS
        for b in graph[a]
        if FLOORS.index(b) > FLOORS.index(a)
    ]
    assert not upward, "arrows that run up:\n" + "\n".join(upward)


def test_only_cli_imports_the_cli() -> None:
    offenders = [
        f"{module_name(path)} -> {target}"
        for path in source_files()
        if package_of(module_name(path)) != "cli"
        for target in imported_modules(path)
        if package_of(target) == "cli"
    ]
    assert not offenders, offenders


def test_no_package_imports_the_public_facade() -> None:
    """``lesionseg.api`` (behind ``lesionseg.segment`` etc.) sits above every floor."""
    offenders = [
        f"{module_name(path)} -> {target}"
        for path in source_files()
        if package_of(module_name(path)) is not None
        for target in imported_modules(path)
        if target == "lesionseg.api" or target.startswith("lesionseg.api.")
    ]
    assert not offenders, offenders


def test_errors_imports_nothing_of_ours() -> None:
    assert imported_modules(SRC / "errors.py") == []
