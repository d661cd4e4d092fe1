#!/usr/bin/env python3
"""The layering checker: every import under ``jfds_device/`` and ``clusters/`` goes down the layer table, or sideways.

The table (``LAYERS``, below) is the one definition of the layers; the README's Architecture table is its rendering
(``--print-table``), and a test keeps the two equal. The checker parses every module with ``ast`` (stdlib only,
nothing is imported or executed), collects every import (module-level, in functions, under ``if TYPE_CHECKING``,
and ``importlib.import_module`` / ``__import__`` of a literal name), resolves ``from x import y`` to the module
``x.y`` when that is a module of the tree, and reports:

(a) **upward imports**: a module imports one of a higher layer;
(b) **cycles between components**: a component is one row pattern's match at the table's granularity (the package
    ``jfds_device.codec``, the module ``jfds_device.qr``, the module ``clusters.descriptor.schema``, the package
    ``clusters.descriptor`` for the rest of that cluster); every import counts, so a cycle hidden in a function or
    under ``TYPE_CHECKING`` is still a cycle; cycles between single modules are reported too ("module cycle"),
    since one inside a component is the same tangle at a finer grain;
(c) **deferred imports** (in a function, or under ``if TYPE_CHECKING``) that ``DEFERRED_IMPORTS_ALLOWED`` does not
    list with a reason; a listed entry that no longer matches an import is reported too, so the list cannot rot;
(d) **modules missing from the table**, so a new package cannot sit outside the layering;
and a file that does not parse is reported ("unparsable"), never skipped.

Importing ``a.b.c`` also runs the ``__init__`` of ``a`` and ``a.b``; that is not counted as an import of those
packages (every module would then depend on ``jfds_device/__init__.py``, the public surface at the top); a package's
``__init__`` is checked for its own imports like any module.

Exit status 1 with one line per violation (``file:line: kind: importer (layer) → imported (layer)``), 0 when clean,
2 when ``--root`` holds none of the packages.

Usage: ``python tools/check_layers.py [--root DIR] [--print-table]``.
"""

from __future__ import annotations

import argparse
import ast
import itertools
import sys
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "DEFERRED_IMPORTS_ALLOWED",
    "LAYERS",
    "PACKAGES",
    "AllowedImport",
    "Import",
    "Layer",
    "Violation",
    "check",
    "collect_imports",
    "main",
    "render_table",
]

PACKAGES = ("jfds_device", "clusters")
"""The top-level packages the checker parses (relative to ``--root``)."""


@dataclass(frozen=True, slots=True)
class Layer:
    """One row of the table. A pattern is a dotted module name in which ``*`` matches one name and a trailing
    ``.**`` matches the module and everything below it; without ``.**`` a pattern matches that one module."""

    number: int
    name: str
    patterns: tuple[str, ...]
    what: str


LAYERS: tuple[Layer, ...] = (
    Layer(
        1,
        "base",
        ("jfds_device.errors", "jfds_device.clock", "jfds_device.backoff"),
        "errors, the clock seam (the loop's time, or virtual time in tests), backoff arithmetic",
    ),
    Layer(
        2,
        "codec",
        ("jfds_device.codec.**",),
        "`tlv.py` (Matter TLV, hand-written, strict), `schema.py` (typed structs with field ids and bounds), "
        "`model.py` (cluster/attribute/command tables), `message.py` (message and protocol headers, over `struct`)",
    ),
    Layer(
        3,
        "crypto",
        ("jfds_device.crypto.**", "jfds_device.onboarding", "jfds_device.qr"),
        "AES-CCM, HKDF, ECDSA (`primitives.py`), SPAKE2+ (`spake2p.py`), CASE keys (`case_keys.py`), session keys, "
        "operational certificates TLV <-> X.509 (`certs.py` over `cert_fields.py`, `cert_convert.py`, `cert_chain.py`, "
        "`cert_issuer.py`), "
        "a small DER codec, device attestation (`attestation.py`); QR (`MT:`) payloads and manual pairing codes",
    ),
    Layer(
        4,
        "cluster descriptions",
        ("clusters", "clusters.*.schema"),
        "one schema per cluster (codec only): every id, struct and command of the cluster, described once for "
        "servers and clients",
    ),
    Layer(
        5,
        "transport",
        ("jfds_device.transport.**",),
        "message counters and replay windows, sessions with their budgets and eviction policy (`eviction.py`), MRP "
        "and exchanges (sans-IO), the asyncio UDP socket (`udp.py`)",
    ),
    Layer(
        6,
        "secure channel",
        ("jfds_device.securechannel.**",),
        "StatusReport, PASE and CASE (responder and initiator, resumption) as sans-IO state machines",
    ),
    Layer(
        7,
        "interaction model",
        ("jfds_device.im.**",),
        "the IM server (read/write/invoke/subscribe, wildcards, chunking, timed), its resource limits "
        "(`admission.py`), the IM client, the provider seam",
    ),
    Layer(
        8,
        "storage",
        ("jfds_device.datastore.**",),
        "SQLite (WAL, migrations, counter reservation) and the JFDS datastore with per-entry status (`JfdsStore`, "
        "a facade over the per-node entries and the fabric-wide lists, which share one transaction)",
    ),
    Layer(
        9,
        "data model",
        ("jfds_device.datamodel.**",),
        "cluster server base, endpoint tree (it mounts the servers the layout gives it for every endpoint), ACL "
        "engine, commissioning window",
    ),
    Layer(
        10,
        "fabrics",
        ("jfds_device.fabrics",),
        "fabric table, operational keys, persisted CASE resumption",
    ),
    Layer(
        11,
        "cluster servers",
        ("clusters.*.**",),
        "one server per served cluster (`server.py`, with its `logic.py` where the cluster has rules of its own)",
    ),
    Layer(
        12,
        "reconciler",
        ("jfds_device.reconciler.**",),
        "sans-IO planner, facets (key sets, group key map, group membership, ACL, bindings), per-node executor, "
        "RefreshNode; it reaches peers and time through Protocols it declares, never through `node`",
    ),
    Layer(
        13,
        "node",
        ("jfds_device.node.**", "jfds_device.fleet.**"),
        "composition: the one stack (endpoint, sessions, handshakes, IM server and client, peer connections, and the "
        "routing of every transport event), the process shell, the root node layout (which mounts the Descriptor "
        "server on every endpoint) and the fail-safe-bounded commissioning attempt, start-up lines, DNS-SD, the "
        "anchor role, CLI config; the fleet simulator (`fleet/`: many simulated peer nodes, each a root node and a "
        "stack, in one process, advertised by one DNS-SD responder, joined by commissioning or fast provisioning)",
    ),
    Layer(
        14,
        "cli",
        ("jfds_device.cli", "jfds_device.status", "jfds_device.web", "jfds_device.web_page", "jfds_device.__main__",
         "jfds_device"),
        "the `jfds-device` command (with its `status` report and its `--http` view: metrics and actions, and the "
        "dashboard's HTML in `web_page.py`) "
        "and the package's public surface (`jfds_device/__init__.py`)",
    ),
)


@dataclass(frozen=True, slots=True)
class AllowedImport:
    """Deferred imports that are allowed, and why (a genuinely optional or heavy dependency). ``importer`` and
    ``imported`` are patterns as in the table (``*``, a trailing ``.**``)."""

    importer: str
    imported: str
    reason: str


DEFERRED_IMPORTS_ALLOWED: tuple[AllowedImport, ...] = (
    AllowedImport(
        "jfds_device.cli",
        "jfds_device.**",
        "start-up speed: each subcommand imports what it runs (the node for `run`) only when it runs, so a usage "
        "error or --help answers before the whole stack (asyncio, cryptography, zeroconf) is imported (python -X "
        "importtime: about 0.03 s for the CLI, 0.3 s with node.app); the CLI is the top layer, so what it defers "
        "cannot close a cycle",
    ),
)


@dataclass(frozen=True, slots=True)
class Import:
    """One import of a module of the tree by another."""

    importer: str
    imported: str
    path: Path
    line: int
    kind: str  # "module", "in-function" or "TYPE_CHECKING"


@dataclass(frozen=True, slots=True)
class Violation:
    path: Path
    line: int
    kind: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.kind}: {self.message}"


# --- the table ---------------------------------------------------------------------------------------------------


def _pattern_match(pattern: str, module: str) -> str | None:
    """The component ``module`` belongs to under ``pattern`` (the part the pattern spells out), or None."""
    pat = pattern.split(".")
    subtree = pat[-1] == "**"
    if subtree:
        pat = pat[:-1]
    parts = module.split(".")
    if len(parts) < len(pat) or (not subtree and len(parts) != len(pat)):
        return None
    if any(p != "*" and p != name for p, name in zip(pat, parts, strict=False)):
        return None
    return ".".join(parts[: len(pat)])


def _specificity(pattern: str) -> tuple[int, int]:
    parts = pattern.split(".")
    exact = parts[-1] != "**"
    return (len(parts) - (0 if exact else 1), int(exact))


def locate(module: str, layers: Sequence[Layer] = LAYERS) -> tuple[Layer, str] | None:
    """The layer and component of ``module``: the most specific pattern that matches it wins."""
    best: tuple[tuple[int, int], Layer, str] | None = None
    for layer in layers:
        for pattern in layer.patterns:
            component = _pattern_match(pattern, module)
            if component is not None and (best is None or _specificity(pattern) > best[0]):
                best = (_specificity(pattern), layer, component)
    return None if best is None else (best[1], best[2])


def render_table(layers: Sequence[Layer] = LAYERS) -> str:
    """The table as the README shows it (Markdown), bottom layer first."""
    lines = ["| layer | name | modules | what |", "|---|---|---|---|"]
    for layer in layers:
        patterns = ", ".join(f"`{p}`" for p in layer.patterns)
        lines.append(f"| {layer.number} | {layer.name} | {patterns} | {layer.what} |")
    return "\n".join(lines) + "\n"


# --- collecting imports ------------------------------------------------------------------------------------------


def discover_modules(root: Path, packages: Iterable[str] = PACKAGES) -> dict[str, Path]:
    """Module name → file, for every ``.py`` file under the packages (a package is its ``__init__.py``)."""
    modules: dict[str, Path] = {}
    for package in packages:
        base = root / package
        if not base.is_dir():
            continue
        for path in sorted(base.rglob("*.py")):
            parts = list(path.relative_to(root).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            modules[".".join(parts)] = path
    return modules


def _is_type_checking(test: ast.expr) -> bool:
    if isinstance(test, ast.Name):
        return test.id == "TYPE_CHECKING"
    return isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"


def _walk(node: ast.AST, kind: str) -> Iterator[tuple[ast.AST, str]]:
    """Every node under ``node`` with the context it runs in: at import ("module"), deferred ("in-function"), or
    never at run time ("TYPE_CHECKING")."""
    for child in ast.iter_child_nodes(node):
        child_kind = kind
        if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda) and kind == "module":
            child_kind = "in-function"
        yield child, child_kind
        if isinstance(child, ast.If) and _is_type_checking(child.test) and child_kind == "module":
            for stmt in child.body:
                yield stmt, "TYPE_CHECKING"
                yield from _walk(stmt, "TYPE_CHECKING")
            for stmt in child.orelse:
                yield stmt, child_kind
                yield from _walk(stmt, child_kind)
            yield child.test, child_kind
            continue
        yield from _walk(child, child_kind)


def _literal_import_call(node: ast.AST) -> str | None:
    """The module name of ``importlib.import_module("x")`` / ``import_module("x")`` / ``__import__("x")``."""
    if not isinstance(node, ast.Call) or not node.args:
        return None
    func = node.func
    name = func.attr if isinstance(func, ast.Attribute) else func.id if isinstance(func, ast.Name) else None
    first = node.args[0]
    if name in ("import_module", "__import__") and isinstance(first, ast.Constant) and isinstance(first.value, str):
        return first.value
    return None


def _resolve(name: str, modules: dict[str, Path]) -> str | None:
    """The module of the tree ``name`` refers to: itself, or the longest enclosing module of the tree."""
    parts = name.split(".")
    for end in range(len(parts), 0, -1):
        candidate = ".".join(parts[:end])
        if candidate in modules:
            return candidate
    return None


def _absolute_base(importer: str, is_package: bool, level: int, module: str | None) -> str:
    """The absolute module a ``from`` import names; "" for a relative import past the top package (Python's
    ImportError, nothing of the tree)."""
    if level == 0:
        return module or ""
    package = importer.split(".") if is_package else importer.split(".")[:-1]
    if level - 1 >= len(package):
        return ""
    package = package[: len(package) - (level - 1)]
    return ".".join([*package, module] if module else package)


def collect_imports(root: Path, modules: dict[str, Path]) -> tuple[list[Import], list[Violation]]:
    """Every import between modules of the tree, and the files that do not parse."""
    imports: list[Import] = []
    errors: list[Violation] = []
    for importer, path in modules.items():
        rel = path.relative_to(root)
        try:
            tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(rel))
        except (SyntaxError, UnicodeDecodeError) as exc:
            errors.append(Violation(rel, getattr(exc, "lineno", None) or 1, "unparsable", str(exc)))
            continue
        is_package = path.name == "__init__.py"
        for node, kind in _walk(tree, "module"):
            if not isinstance(node, ast.stmt | ast.expr):
                continue
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = _absolute_base(importer, is_package, node.level, node.module)
                submodules = (f"{base}.{alias.name}" for alias in node.names)
                targets = [name if name in modules else base for name in submodules]
            elif (literal := _literal_import_call(node)) is not None:
                targets = [literal]
            for target in dict.fromkeys(targets):
                resolved = _resolve(target, modules)
                if resolved is not None and resolved != importer:
                    imports.append(Import(importer, resolved, rel, node.lineno, kind))
    return imports, errors


# --- the checks --------------------------------------------------------------------------------------------------


def _describe(module: str, layers: Sequence[Layer]) -> str:
    found = locate(module, layers)
    return f"{module} (not in the layer table)" if found is None else f"{module} ({found[0].number} {found[0].name})"


def _strongly_connected(graph: dict[str, set[str]]) -> list[list[str]]:
    """Tarjan's algorithm, iterative; the components with more than one node, each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = 0
    for start in sorted(graph):
        if start in index:
            continue
        work: list[tuple[str, Iterator[str]]] = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = counter
        counter += 1
        stack.append(start)
        on_stack.add(start)
        while work:
            node, successors = work[-1]
            advanced = False
            for succ in successors:
                if succ not in index:
                    index[succ] = low[succ] = counter
                    counter += 1
                    stack.append(succ)
                    on_stack.add(succ)
                    work.append((succ, iter(sorted(graph.get(succ, ())))))
                    advanced = True
                    break
                if succ in on_stack:
                    low[node] = min(low[node], index[succ])
            if advanced:
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                members: list[str] = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    members.append(member)
                    if member == node:
                        break
                if len(members) > 1:
                    found.append(sorted(members))
    return found


def _shortest_cycle(start: str, members: set[str], graph: dict[str, set[str]]) -> list[str]:
    """A shortest cycle through ``start`` inside one strongly connected component (breadth first)."""
    previous: dict[str, str] = {}
    frontier = [start]
    while frontier:
        following: list[str] = []
        for node in frontier:
            for succ in sorted(graph[node] & members):
                if succ == start:
                    path = [node]
                    while path[-1] != start:
                        path.append(previous[path[-1]])
                    return [*reversed(path), start]
                if succ not in previous:
                    previous[succ] = node
                    following.append(succ)
        frontier = following
    return [start]  # unreachable for a strongly connected component


def _allows(allowance: AllowedImport, imp: Import) -> bool:
    return (
        _pattern_match(allowance.importer, imp.importer) is not None
        and _pattern_match(allowance.imported, imp.imported) is not None
    )


def _cycles(graph: dict[str, set[str]], edges: dict[tuple[str, str], Import], kind: str) -> list[Violation]:
    """One violation per strongly connected group of ``graph``: a shortest cycle in it, each hop located."""
    found = []
    for members in _strongly_connected(graph):
        cycle = _shortest_cycle(members[0], set(members), graph)
        hops = [edges[(a, b)] for a, b in itertools.pairwise(cycle)]
        where = "; ".join(f"{h.importer} → {h.imported} at {h.path}:{h.line}" for h in hops)
        rest = sorted(set(members) - set(cycle))
        also = f"; also in the cycle: {', '.join(rest)}" if rest else ""
        found.append(Violation(hops[0].path, hops[0].line, kind, f"{' → '.join(cycle)} ({where}{also})"))
    return found


def check(
    root: Path,
    layers: Sequence[Layer] = LAYERS,
    allowed: Sequence[AllowedImport] = DEFERRED_IMPORTS_ALLOWED,
    packages: Iterable[str] = PACKAGES,
) -> list[Violation]:
    """Every violation of the layering in the tree under ``root``, sorted by file and line."""
    modules = discover_modules(root, packages)
    imports, violations = collect_imports(root, modules)
    for module, path in modules.items():
        if locate(module, layers) is None:
            violations.append(Violation(path.relative_to(root), 1, "unmapped", f"{module} is not in the layer table"))

    component_edges: dict[tuple[str, str], Import] = {}
    graph: dict[str, set[str]] = {}
    used_allowances: set[AllowedImport] = set()
    for imp in imports:
        importer, imported = locate(imp.importer, layers), locate(imp.imported, layers)
        arrow = f"{_describe(imp.importer, layers)} → {_describe(imp.imported, layers)}"
        if importer is not None and imported is not None:
            if imported[0].number > importer[0].number:
                violations.append(Violation(imp.path, imp.line, "upward import", arrow))
            if importer[1] != imported[1]:
                graph.setdefault(importer[1], set()).add(imported[1])
                graph.setdefault(imported[1], set())
                component_edges.setdefault((importer[1], imported[1]), imp)
        if imp.kind != "module":
            allowance = next((a for a in allowed if _allows(a, imp)), None)
            if allowance is None:
                violations.append(Violation(imp.path, imp.line, f"{imp.kind} import", arrow))
            else:
                used_allowances.add(allowance)

    violations += _cycles(graph, component_edges, "cycle")
    module_edges: dict[tuple[str, str], Import] = {}
    module_graph: dict[str, set[str]] = {}
    for imp in imports:
        module_graph.setdefault(imp.importer, set()).add(imp.imported)
        module_graph.setdefault(imp.imported, set())
        module_edges.setdefault((imp.importer, imp.imported), imp)
    violations += _cycles(module_graph, module_edges, "module cycle")

    for allowance in allowed:
        if allowance not in used_allowances:
            violations.append(
                Violation(
                    Path(__file__).name,
                    1,
                    "stale allowance",
                    f"{allowance.importer} → {allowance.imported} is allowed but no deferred import matches it",
                )
            )
    return sorted(violations, key=lambda v: (str(v.path), v.line, v.kind, v.message))


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, default=Path(__file__).resolve().parent.parent, help="repository root")
    parser.add_argument("--print-table", action="store_true", help="print the layer table (Markdown) and exit")
    args = parser.parse_args(argv)
    if args.print_table:
        sys.stdout.write(render_table())
        return 0
    if not discover_modules(args.root):
        # A wrong --root must not pass as "no violations".
        print(f"check_layers: no module of {', '.join(PACKAGES)} under {args.root}", file=sys.stderr)
        return 2
    violations = check(args.root)
    for violation in violations:
        print(violation)
    if violations:
        print(f"{len(violations)} layering violation(s)", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
