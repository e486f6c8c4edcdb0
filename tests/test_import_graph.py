"""The architecture as imports: which plane may import which (DESIGN.md, "Top-level layout")."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent
PLANES = ("townhall", "sfu", "control", "recorder", "clients")
COMPOSITION_ROOT = "townhall.cli"

# package -> top-level packages it must not import
FORBIDDEN: dict[str, set[str]] = {
    "sfu": {"control", "recorder", "clients"},
    "control": {"sfu", "recorder", "clients"},
    "recorder": {"control"},
    "clients": {"sfu", "control", "recorder"},
}
# What a plane may take from the `townhall` package: only the shared contract
# (townhall.contract; for the planes that meet in a cluster, also the node
# registry record, the meeting leases and the RPC between processes).
CLUSTER_CONTRACT = {
    "townhall.contract",
    "townhall.cluster",
    "townhall.cluster_redis",
    "townhall.cluster_bus",
}
ALLOWED_FROM_TOWNHALL: dict[str, set[str]] = {
    "sfu": CLUSTER_CONTRACT,
    "control": CLUSTER_CONTRACT,
    "clients": {"townhall.contract"},
    "recorder": {"townhall.contract"},
}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(REPO_ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def modules() -> Iterator[tuple[str, Path]]:
    for plane in PLANES:
        for path in sorted((REPO_ROOT / plane).rglob("*.py")):
            yield module_name(path), path


def imports(name: str, path: Path) -> set[str]:
    """Absolute names of every module ``path`` imports (relative imports resolved)."""
    tree = ast.parse(path.read_text(), filename=str(path))
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                prefix = ".".join(base + ([node.module] if node.module else []))
            else:
                prefix = node.module or ""
            found.add(prefix)
            # `from townhall import contract` imports the module townhall.contract.
            found.update(f"{prefix}.{alias.name}" for alias in node.names)
    return found


def top(name: str) -> str:
    return name.split(".")[0]


GRAPH = {name: imports(name, path) for name, path in modules()}


def test_the_planes_are_found() -> None:
    assert "townhall.cli" in GRAPH
    assert "control.app" in GRAPH
    assert "sfu.node" in GRAPH


@pytest.mark.parametrize("module", sorted(GRAPH))
def test_plane_boundaries(module: str) -> None:
    plane = top(module)
    imported = GRAPH[module]
    forbidden = sorted(name for name in imported if top(name) in FORBIDDEN.get(plane, set()))
    assert not forbidden, f"{module} imports {forbidden}"
    if plane in ALLOWED_FROM_TOWNHALL:
        # `from townhall import contract` also records the bare package name.
        allowed = ALLOWED_FROM_TOWNHALL[plane]
        extra = sorted(
            n
            for n in imported
            if top(n) == "townhall"
            and n != "townhall"
            and not any(n == a or n.startswith(f"{a}.") for a in allowed)
        )
        assert not extra, f"{module} imports {extra}; only the contract modules are shared"


def test_only_the_composition_root_imports_both_sfu_and_control() -> None:
    both = sorted(
        name for name, imported in GRAPH.items() if {"sfu", "control"} <= {top(n) for n in imported}
    )
    assert both == [COMPOSITION_ROOT]


@pytest.mark.parametrize("contract", sorted(CLUSTER_CONTRACT))
def test_the_contract_imports_no_plane(contract: str) -> None:
    planes = {top(n) for n in GRAPH[contract]} & set(PLANES)
    assert planes <= {"townhall"}
    outside = {
        n
        for n in GRAPH[contract]
        if top(n) == "townhall"
        and n != "townhall"
        and not any(n == a or n.startswith(f"{a}.") for a in CLUSTER_CONTRACT)
    }
    assert not outside


def test_the_resolver_handles_relative_imports(tmp_path: Path) -> None:
    source = "from . import b\nfrom .c import d\nfrom .. import e\nimport f.g\n"
    path = tmp_path / "a.py"
    path.write_text(source)
    assert imports("pkg.sub.a", path) == {
        "pkg.sub",
        "pkg.sub.b",
        "pkg.sub.c",
        "pkg.sub.c.d",
        "pkg",
        "pkg.e",
        "f.g",
    }
