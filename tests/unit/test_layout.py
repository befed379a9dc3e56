"""The shape the project keeps: the product package imports no tool, and has no import cycle."""

from __future__ import annotations

import ast
import re
from pathlib import Path

SRC = Path(__file__).resolve().parents[2] / "src"


def module_imports() -> dict[str, set[str]]:
    """Each product module and the product modules it imports at module level."""
    modules = {
        ".".join(path.relative_to(SRC).with_suffix("").parts).removesuffix(".__init__"): path
        for path in SRC.rglob("*.py")
    }
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        found: set[str] = set()
        for node in ast.parse(path.read_text()).body:
            if isinstance(node, ast.Import):
                found.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module:
                found.add(node.module)
                found.update(f"{node.module}.{alias.name}" for alias in node.names)
        graph[name] = {dep for dep in found if dep in modules and dep != name} | {
            dep for dep in found if dep.split(".")[0] == "qrpay_tools"
        }
    return graph


def test_the_product_imports_no_tool() -> None:
    offenders = {
        name
        for name, deps in module_imports().items()
        if any(dep.startswith("qrpay_tools") for dep in deps)
    }
    assert offenders == set()
    assert not any("qrpay_tools" in path.read_text() for path in SRC.rglob("*.py"))


def test_the_product_has_no_import_cycle() -> None:
    graph = module_imports()
    done: set[str] = set()

    def visit(name: str, path: tuple[str, ...]) -> None:
        if name in path:
            raise AssertionError(" -> ".join((*path[path.index(name) :], name)))
        if name in done:
            return
        for dep in graph.get(name, ()):
            visit(dep, (*path, name))
        done.add(name)

    for module in graph:
        visit(module, ())


def test_the_kernel_imports_and_names_no_service() -> None:
    """Issue 21: the kernel is given what it needs of the services (runner.registry,
    runner.config); it imports none of their packages and names none of them."""
    from qrpay.runner.registry import SERVICES

    kernel = {
        name: deps for name, deps in module_imports().items() if name.startswith("qrpay.kernel")
    }
    outside = {
        name: sorted(dep for dep in deps if not dep.startswith("qrpay.kernel"))
        for name, deps in kernel.items()
    }
    assert {name: deps for name, deps in outside.items() if deps} == {}
    # "transactions" is also the database's word: only its quoted, service form counts.
    words = [spec.name for spec in SERVICES if spec.name != "transactions"]
    pattern = re.compile(
        "|".join([rf"\b{re.escape(word)}\b" for word in words] + [r"[\"']transactions[\"']"])
    )
    found = {
        f"{path.relative_to(SRC)}:{number}": line.strip()
        for path in sorted((SRC / "qrpay" / "kernel").rglob("*.py"))
        for number, line in enumerate(path.read_text().splitlines(), 1)
        if pattern.search(line)
    }
    assert found == {}
