"""The shape of the package, read from its source with ``ast`` (issue 12); no imports run.

Rules (each violation names its file, line and rule):

- ``client-sql``: no module under ``netguard/cli/`` or ``netguard/demo/`` imports
  sqlalchemy or sqlmodel, at any level (a lazy import inside a command is still SQL in the
  CLI). Commands call the area's service; the demo reads the daemon's snapshot.
- ``domain-purity``: the pure cores in ``DOMAIN`` import no pysnmp, aiomqtt, aiohttp,
  sqlalchemy or sqlmodel. Their own imports count at every level, ``TYPE_CHECKING``
  included (the domain does not even name an adapter's types). Through the netguard modules
  they import, what runs counts: module-level and function-level imports, and each
  package's ``__init__`` that Python runs on the way; ``TYPE_CHECKING`` imports of those
  modules never run and are not followed.
- ``import-cycle``: the graph of imports between netguard modules has no cycle. Edges are
  module-level imports, **including** those under ``if TYPE_CHECKING:`` (a cycle hidden
  from the interpreter still ties two modules together: neither can change or be read
  without the other; move the shared type down instead), and function-level imports (a
  lazy import is the usual way to hide a cycle), except function-level imports in
  ``netguard/cli/``, whose commands import the library lazily to start fast (ruff's
  PLC0415 is waived there only). Importing ``a.b`` runs ``a/__init__``, but that is not an
  edge: a package's ``__init__`` re-exporting its own submodules would otherwise be a cycle.
- ``module-lines``: no module over ``MAX_MODULE_LINES`` lines.
- ``function-lines``: no function over ``MAX_FUNCTION_LINES`` lines, from its ``def`` line
  to its last line (decorators not counted, docstring and nested functions counted).
  Alembic revisions (``netguard/store/migrations/versions/``) are exempt: a revision is a
  frozen transcript of one schema, not code that grows.

``KNOWN_VIOLATIONS`` lists what the tree still breaks while issue 12 is under way. It can
only shrink: an entry that is no longer a violation fails the test too, so whoever fixes
one removes it.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from enum import StrEnum
from functools import cache
from pathlib import Path
from typing import NamedTuple

import pytest

REPO = Path(__file__).resolve().parent.parent
PACKAGE = REPO / "netguard"

MAX_MODULE_LINES = 600
MAX_FUNCTION_LINES = 80

# Alembic revisions: frozen transcripts of a schema, exempt from the size rules.
SIZE_EXEMPT = ("netguard/store/migrations/versions/",)

# Libraries that belong to an adapter at the edge, never to a pure core.
ADAPTER_LIBRARIES = frozenset({"pysnmp", "aiomqtt", "aiohttp", "sqlalchemy", "sqlmodel"})
SQL_LIBRARIES = frozenset({"sqlalchemy", "sqlmodel"})
# Clients of the service layer: they never build their own queries.
SQL_FREE_CLIENTS = ("netguard.cli", "netguard.demo")

# The pure cores: decisions, decoders and value types that tests call without a network
# or a database. A module belongs here when it takes data and returns data.
DOMAIN = (
    "netguard.faults",  # the probes -> tickets contract, Severity
    "netguard.errors",  # the exception tree
    "netguard.clock",  # Clock, ManualClock, ClockWatch
    "netguard.names",  # the one name pattern
    "netguard.csvsafe",  # CSV formula-injection guard
    "netguard.probes.decode",  # varbinds -> readings
    "netguard.probes.counters",  # counter maths
    "netguard.probes.assess",  # thresholds, hysteresis, flaps
    "netguard.probes.state",  # per-target state records
    "netguard.iot.codecs",  # payload -> DoorEvent
    "netguard.iot.events",  # DoorEvent and friends
    "netguard.iot.rules",  # door rules
    "netguard.tickets.policy",  # ticket rules
    "netguard.tickets.domain",  # ticket states, actions, columns
    "netguard.tickets.render",  # ticket text for the CLI and notifications
    "netguard.notify.routing",  # which routes a ticket event takes, quiet hours
    "netguard.notify.plan",  # what ticket events and time make the notifier send
    "netguard.notify.texts",  # ticket message texts
    "netguard.notify.summaries",  # fault summaries and reasons in the message language
    "netguard.textpatterns",  # translation of stored lines by pattern
    "netguard.notify.alertmanager",  # Alertmanager webhook payloads
    "netguard.cluster.rendezvous",  # which live member owns which target
)


class Rule(StrEnum):
    """One structural rule; the value is how messages and ``KNOWN_VIOLATIONS`` name it."""

    CLIENT_SQL = "client-sql"
    DOMAIN_PURITY = "domain-purity"
    IMPORT_CYCLE = "import-cycle"
    MODULE_LINES = "module-lines"
    FUNCTION_LINES = "function-lines"


class Known(NamedTuple):
    """A violation's stable identity (no line numbers: those move with every edit)."""

    rule: Rule
    subject: str


# Violations the tree is allowed to keep. Empty since issue 12 landed; an entry needs a
# reason, and the test fails on any entry that no longer holds, so the list only shrinks.
KNOWN_VIOLATIONS: frozenset[Known] = frozenset()


@dataclass(frozen=True)
class Violation:
    """One broken rule, with where it is broken."""

    key: Known
    where: str  # "path:line"
    detail: str

    def __str__(self) -> str:
        return f"{self.where}: [{self.key.rule.value}] {self.detail}"


@dataclass(frozen=True)
class Import:
    """One ``import``/``from … import`` of one module, resolved to a module name."""

    source: str  # the importing module, dotted
    target: str  # the imported module, dotted (a netguard module, or a library's top name)
    line: int
    level: str  # "module", "type-checking" or "function"


@dataclass(frozen=True)
class Module:
    """A netguard source file, parsed once."""

    name: str
    path: Path
    tree: ast.Module
    lines: int

    @property
    def rel(self) -> str:
        return self.path.relative_to(REPO).as_posix()


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


@cache
def modules() -> dict[str, Module]:
    found: dict[str, Module] = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        text = path.read_text(encoding="utf-8")
        name = _module_name(path)
        found[name] = Module(name, path, ast.parse(text, str(path)), len(text.splitlines()))
    return found


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _walk(node: ast.AST, level: str) -> Iterator[tuple[ast.Import | ast.ImportFrom, str]]:
    """Every import under ``node``, with the level it runs at."""
    for child in ast.iter_child_nodes(node):
        if isinstance(child, ast.Import | ast.ImportFrom):
            yield child, level
        elif isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda):
            yield from _walk(child, "function")
        elif isinstance(child, ast.If) and level == "module" and _is_type_checking(child.test):
            for stmt in child.body:
                yield from _walk(ast.Module(body=[stmt], type_ignores=[]), "type-checking")
            for stmt in child.orelse:
                yield from _walk(ast.Module(body=[stmt], type_ignores=[]), "module")
        else:
            yield from _walk(child, level)


def _resolve(module: Module, node: ast.Import | ast.ImportFrom) -> Iterator[str]:
    """The modules an import statement loads: netguard modules in full, libraries by top name."""
    known = modules()
    if isinstance(node, ast.Import):
        for alias in node.names:
            yield alias.name if alias.name in known else alias.name.split(".")[0]
        return
    base = node.module or ""
    if node.level:
        package = module.name.split(".")
        if module.path.name != "__init__.py":
            package.pop()
        package = package[: len(package) - (node.level - 1)]
        base = ".".join([*package, base] if base else package)
    if base.split(".")[0] != "netguard":
        yield base.split(".")[0]
        return
    for alias in node.names:
        # `from netguard.iot import notifiers` loads the submodule; a plain name is an
        # attribute of `base` itself.
        yield f"{base}.{alias.name}" if f"{base}.{alias.name}" in known else base


@cache
def imports(name: str) -> tuple[Import, ...]:
    return _read_imports(modules()[name])


def _read_imports(module: Module) -> tuple[Import, ...]:
    return tuple(
        Import(module.name, target, node.lineno, level)
        for node, level in _walk(module.tree, "module")
        for target in _resolve(module, node)
        if target != "__future__"
    )


def _under(name: str, package: str) -> bool:
    return name == package or name.startswith(f"{package}.")


def _where(name: str, line: int) -> str:
    return f"{modules()[name].rel}:{line}"


# -- the rules ---------------------------------------------------------------------------


def client_sql_violations() -> Iterator[Violation]:
    for name, module in modules().items():
        if not any(_under(name, package) for package in SQL_FREE_CLIENTS):
            continue
        for imp in imports(name):
            if imp.target in SQL_LIBRARIES:
                yield Violation(Known(Rule.CLIENT_SQL, f"{module.rel}: {imp.target}"),
                                _where(name, imp.line),
                                f"{name} imports {imp.target} ({imp.level} level); "
                                "call the area's service instead")


def _runtime_closure(start: str) -> dict[str, Import | None]:
    """Every netguard module that importing ``start`` (and calling into it) can run.

    Maps each module to the import that first reached it (None for ``start`` and for
    the packages Python initialises on the way).
    """
    known = modules()
    reached: dict[str, Import | None] = {}
    todo: list[tuple[str, Import | None]] = [(start, None)]
    while todo:
        name, via = todo.pop()
        if name in reached:
            continue
        reached[name] = via
        parts = name.split(".")
        todo.extend((".".join(parts[:i]), via) for i in range(1, len(parts))
                    if ".".join(parts[:i]) in known)
        todo.extend((imp.target, imp) for imp in imports(name)
                    if imp.level != "type-checking" and imp.target in known)
    return reached


def _chain(reached: dict[str, Import | None], name: str) -> str:
    hops = [name]
    via = reached[name]
    while via is not None:
        hops.append(via.source)
        via = reached[via.source]
    return " <- ".join(hops)


def domain_purity_violations(starts: tuple[str, ...] = DOMAIN) -> Iterator[Violation]:
    for start in starts:
        reached = _runtime_closure(start)
        for name in reached:
            for imp in imports(name):
                if imp.target not in ADAPTER_LIBRARIES:
                    continue
                if name != start and imp.level == "type-checking":
                    continue
                through = "" if name == start else f" through {_chain(reached, name)}"
                yield Violation(Known(Rule.DOMAIN_PURITY, f"{start}: {imp.target}"),
                                _where(name, imp.line),
                                f"domain module {start} imports {imp.target}{through}")


def _edges() -> dict[str, list[Import]]:
    graph: dict[str, list[Import]] = {}
    for name in modules():
        graph[name] = [
            imp for imp in imports(name)
            if imp.target in modules() and imp.target != name
            and not (_under(name, "netguard.cli") and imp.level == "function")
        ]
    return graph


def _components(graph: dict[str, list[Import]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    for root in graph:
        if root in index:
            continue
        work: list[tuple[str, int]] = [(root, 0)]
        while work:
            node, i = work.pop()
            if i == 0:
                index[node] = low[node] = len(index)
                stack.append(node)
                on_stack.add(node)
            targets = [imp.target for imp in graph[node]]
            if i < len(targets):
                work.append((node, i + 1))
                nxt = targets[i]
                if nxt not in index:
                    work.append((nxt, 0))
                elif nxt in on_stack:
                    low[node] = min(low[node], index[nxt])
                continue
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
    return found


def _cycle_path(graph: dict[str, list[Import]], members: list[str]) -> list[Import]:
    """One concrete cycle through the first member, inside the component (BFS)."""
    inside = set(members)
    start = members[0]
    came: dict[str, Import] = {}
    frontier = [start]
    while frontier:
        nxt: list[str] = []
        for node in frontier:
            for imp in graph[node]:
                if imp.target not in inside:
                    continue
                if imp.target == start:
                    path = [imp]
                    while path[0].source != start:
                        path.insert(0, came[path[0].source])
                    return path
                if imp.target not in came:
                    came[imp.target] = imp
                    nxt.append(imp.target)
        frontier = nxt
    raise AssertionError(f"no cycle through {start}")  # a component always has one


def cycle_violations() -> Iterator[Violation]:
    graph = _edges()
    for members in _components(graph):
        path = _cycle_path(graph, members)
        hops = "; ".join(f"{_where(imp.source, imp.line)} {imp.source} imports "
                         f"{imp.target} ({imp.level} level)" for imp in path)
        yield Violation(Known(Rule.IMPORT_CYCLE, " <-> ".join(members)),
                        _where(path[0].source, path[0].line),
                        f"import cycle between {', '.join(members)}: {hops}")


def _size_exempt(module: Module) -> bool:
    return module.rel.startswith(SIZE_EXEMPT)


def module_lines_violations() -> Iterator[Violation]:
    for module in modules().values():
        if module.lines > MAX_MODULE_LINES and not _size_exempt(module):
            yield Violation(Known(Rule.MODULE_LINES, module.rel), f"{module.rel}:1",
                            f"{module.lines} lines (limit {MAX_MODULE_LINES})")


Function = ast.FunctionDef | ast.AsyncFunctionDef


def _functions(node: ast.AST, prefix: str) -> Iterator[tuple[str, Function]]:
    for child in ast.iter_child_nodes(node):
        if isinstance(child, Function):
            yield f"{prefix}{child.name}", child
            yield from _functions(child, f"{prefix}{child.name}.")
        elif isinstance(child, ast.ClassDef):
            yield from _functions(child, f"{prefix}{child.name}.")
        else:
            yield from _functions(child, prefix)


def function_lines_violations() -> Iterator[Violation]:
    for module in modules().values():
        if _size_exempt(module):
            continue
        for qualname, func in _functions(module.tree, ""):
            length = (func.end_lineno or func.lineno) - func.lineno + 1
            if length > MAX_FUNCTION_LINES:
                yield Violation(Known(Rule.FUNCTION_LINES, f"{module.rel}: {qualname}"),
                                f"{module.rel}:{func.lineno}",
                                f"{qualname} has {length} lines (limit {MAX_FUNCTION_LINES})")


CHECKS = {
    Rule.CLIENT_SQL: client_sql_violations,
    Rule.DOMAIN_PURITY: domain_purity_violations,
    Rule.IMPORT_CYCLE: cycle_violations,
    Rule.MODULE_LINES: module_lines_violations,
    Rule.FUNCTION_LINES: function_lines_violations,
}


@pytest.mark.parametrize("rule", list(Rule), ids=[rule.value for rule in Rule])
def test_rule(rule: Rule) -> None:
    found = list(CHECKS[rule]())
    new = sorted(str(v) for v in found if v.key not in KNOWN_VIOLATIONS)
    keys = {v.key for v in found}
    fixed = sorted(f"{k.subject} (remove it from KNOWN_VIOLATIONS)"
                   for k in KNOWN_VIOLATIONS if k.rule is rule and k not in keys)
    report = [f"[{rule.value}] broken:", *new] if new else []
    if fixed:
        report += [f"[{rule.value}] known violations that no longer hold:", *fixed]
    assert not report, "\n".join(report)


# -- lazy imports that carry a reason ----------------------------------------------------

# Each lazy import kept outside the CLI (ruff PLC0415 waived) says "X loads only when
# needed"; importing these modules in a fresh interpreter shows the claim still holds.
LAZY = {
    # every CLI command loads the config; netguard.store's __init__ loads db lazily
    "netguard.config": ("sqlalchemy", "sqlmodel", "alembic"),
    # `tickets list` reads through the driver, and asyncpg only for PostgreSQL
    "netguard.tickets.reader": ("sqlalchemy", "sqlmodel", "alembic", "asyncpg"),
    # Alembic only to migrate
    "netguard.store.db": ("alembic",),
    # pysnmp only when a target polls with it or the trap receiver opens
    "netguard.probes.transport": ("pysnmp",),
    "netguard.probes.traps": ("pysnmp",),
    "netguard.metrics": ("pysnmp",),
}


@pytest.mark.parametrize("module", sorted(LAZY))
def test_a_lazy_import_is_lazy(module: str) -> None:
    code = (f"import sys, {module}\n"
            f"print(' '.join(m for m in {LAZY[module]!r} if m in sys.modules))")
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            check=True, cwd=REPO).stdout.split()
    assert not loaded, f"importing {module} loads {loaded}"


# -- the checker checks itself -----------------------------------------------------------


def test_the_domain_list_names_real_modules() -> None:
    assert set(DOMAIN) <= set(modules()), set(DOMAIN) - set(modules())


def test_imports_are_read_at_every_level() -> None:
    # A lazy, a TYPE_CHECKING, a relative and a submodule import are all seen, so a
    # violation cannot hide in any of them.
    source = """
from __future__ import annotations
import typing
from typing import TYPE_CHECKING
from netguard.iot import notifiers, config as iot_config
from . import rules
if TYPE_CHECKING:
    import sqlalchemy.orm
else:
    from ..tickets.domain import Ticket
try:
    import aiomqtt
except ImportError:
    pass
class Service:
    async def run(self) -> None:
        from sqlmodel import select
        handler = lambda: __import__("x")
"""
    module = Module("netguard.iot.sample", PACKAGE / "iot" / "sample.py", ast.parse(source), 19)
    found = {(imp.target, imp.line, imp.level) for imp in _read_imports(module)}
    assert found == {
        ("typing", 3, "module"), ("typing", 4, "module"),
        ("netguard.iot.notifiers", 5, "module"), ("netguard.iot.config", 5, "module"),
        ("netguard.iot.rules", 6, "module"),
        ("sqlalchemy", 8, "type-checking"),
        ("netguard.tickets.domain", 10, "module"),
        ("aiomqtt", 12, "module"),
        ("sqlmodel", 17, "function"),
    }


def test_the_purity_check_follows_imports_into_other_modules() -> None:
    # The ticket service imports no adapter library itself; its repository does.
    assert not any(imp.target in ADAPTER_LIBRARIES for imp in imports("netguard.tickets.service"))
    found = [str(v) for v in domain_purity_violations(("netguard.tickets.service",))]
    assert any("imports sqlalchemy through netguard.tickets.repository <- "
               "netguard.tickets.service" in line for line in found), found


def test_the_cycle_finder_finds_a_planted_cycle() -> None:
    a = Import("x.a", "x.b", 1, "module")
    b = Import("x.b", "x.c", 2, "function")
    c = Import("x.c", "x.a", 3, "type-checking")
    d = Import("x.c", "x.d", 4, "module")
    graph = {"x.a": [a], "x.b": [b], "x.c": [c, d], "x.d": []}
    assert _components(graph) == [["x.a", "x.b", "x.c"]]
    assert _cycle_path(graph, ["x.a", "x.b", "x.c"]) == [a, b, c]
