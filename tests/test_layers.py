"""The layering checker (tools/check_layers.py): it fails on bad imports in a throw-away module tree, passes on
good ones, and the repository itself, the README's table and CI agree with it."""

from __future__ import annotations

import importlib.util
import re
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

REPO_ROOT = Path(__file__).resolve().parent.parent
TOOL = REPO_ROOT / "tools" / "check_layers.py"


def _load_tool() -> ModuleType:
    spec = importlib.util.spec_from_file_location("check_layers", TOOL)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["check_layers"] = module  # dataclasses look their module up while the class is made
    spec.loader.exec_module(module)
    return module


cl = _load_tool()

# A miniature of the repository: one module per layer it needs, every import downward.
CLEAN_TREE = {
    "jfds_device/__init__.py": "from jfds_device.node.config import Config\n",
    "jfds_device/errors.py": "class MatterError(Exception): ...\n",
    "jfds_device/codec/__init__.py": "",
    "jfds_device/codec/tlv.py": "from jfds_device.errors import MatterError\n",
    "jfds_device/codec/schema.py": "from jfds_device.codec import tlv\nfrom . import tlv as again\n",
    "jfds_device/onboarding.py": "from jfds_device.codec.schema import x\n",
    "jfds_device/qr.py": "from jfds_device import onboarding\n",
    "jfds_device/datamodel/__init__.py": "",
    "jfds_device/datamodel/node.py": "from clusters.descriptor.schema import DeviceTypeStruct\n",
    "clusters/__init__.py": "",
    "clusters/descriptor/__init__.py": "",
    "clusters/descriptor/schema.py": "from jfds_device.codec.schema import Struct\n",
    "clusters/descriptor/server.py": (
        "from clusters.descriptor import schema\nfrom clusters.groups.schema import X\n"
        "from jfds_device.datamodel.node import Node\n"
    ),
    "clusters/groups/__init__.py": "",
    "clusters/groups/schema.py": "from clusters.descriptor.schema import DeviceTypeStruct\n",
    "jfds_device/node/__init__.py": "",
    "jfds_device/node/config.py": "import json\nfrom jfds_device import qr\n",
    "jfds_device/node/app.py": "from clusters.descriptor.server import DescriptorServer\n",
    "jfds_device/cli.py": (
        "from jfds_device.node.config import Config\n\ndef main():\n    from jfds_device.node.app import run\n"
    ),
}


def make_tree(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


def run_tool(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(TOOL), *args], capture_output=True, text=True, timeout=60)


def lines(violations: list[object]) -> list[str]:
    return [str(v) for v in violations]


# ---------------------------------------------------------------------------------------------- a clean tree


def test_a_clean_tree_passes_and_exits_0(tmp_path: Path) -> None:
    make_tree(tmp_path, CLEAN_TREE)
    assert cl.check(tmp_path) == []
    result = run_tool("--root", str(tmp_path))
    assert (result.returncode, result.stdout) == (0, "")


def test_a_root_without_the_packages_is_an_error_not_a_pass(tmp_path: Path) -> None:
    result = run_tool("--root", str(tmp_path))
    assert result.returncode == 2 and result.stdout == ""
    assert "no module of jfds_device, clusters" in result.stderr


def test_a_package_init_is_checked_but_its_implicit_run_is_no_import(tmp_path: Path) -> None:
    """Importing jfds_device.codec.tlv runs jfds_device/__init__.py (layer 14): no edge, or everything would be
    upward. The __init__ itself is checked for its own imports."""
    make_tree(tmp_path, CLEAN_TREE)
    assert cl.check(tmp_path) == []
    make_tree(tmp_path, {"jfds_device/codec/__init__.py": "from jfds_device.node.app import run\n"})
    assert (
        "jfds_device/codec/__init__.py:1: upward import: jfds_device.codec (2 codec) → jfds_device.node.app (13 node)"
    ) in lines(cl.check(tmp_path))


def test_relative_imports_from_a_package_init_and_past_the_top_are_resolved_or_ignored(tmp_path: Path) -> None:
    make_tree(
        tmp_path,
        {
            **CLEAN_TREE,
            "jfds_device/codec/__init__.py": "from . import tlv\nfrom .schema import Struct\n",
            "jfds_device/codec/tlv.py": "from .... import nowhere\nfrom jfds_device.errors import MatterError\n",
        },
    )
    assert cl.check(tmp_path) == []
    make_tree(tmp_path, {"jfds_device/codec/__init__.py": "from .. import cli\n"})
    upward = [str(v) for v in cl.check(tmp_path) if v.kind == "upward import"]
    assert upward == [
        "jfds_device/codec/__init__.py:1: upward import: jfds_device.codec (2 codec) → jfds_device.cli (14 cli)"
    ]


# ---------------------------------------------------------------------------------------------- (a) upward


def test_an_upward_import_fails_with_its_file_line_and_layers(tmp_path: Path) -> None:
    make_tree(tmp_path, {**CLEAN_TREE, "jfds_device/codec/tlv.py": "import os\n\nfrom jfds_device.node import app\n"})
    expected = (
        "jfds_device/codec/tlv.py:3: upward import: jfds_device.codec.tlv (2 codec) → jfds_device.node.app (13 node)"
    )
    assert expected in lines(cl.check(tmp_path))
    result = run_tool("--root", str(tmp_path))
    assert result.returncode == 1
    assert expected in result.stdout.splitlines()
    assert "layering violation" in result.stderr


@pytest.mark.parametrize(
    "text",
    [
        "from ..node.app import run\n",  # relative, resolved against the importer's package
        "from ..node import app\n",  # from-import of a module
        "import jfds_device.node.app as app\n",
        "from jfds_device.node.app import run\n",
    ],
)
def test_every_spelling_of_an_import_is_resolved(tmp_path: Path, text: str) -> None:
    make_tree(tmp_path, {**CLEAN_TREE, "jfds_device/codec/schema.py": text})
    found = [v for v in cl.check(tmp_path) if v.kind == "upward import"]
    assert [(str(v.path), v.line) for v in found] == [("jfds_device/codec/schema.py", 1)]
    assert "→ jfds_device.node.app (13 node)" in found[0].message


def test_a_cluster_schema_is_below_the_cluster_servers(tmp_path: Path) -> None:
    """Module-level precision: clusters.<x>.schema is layer 4, the rest of clusters.<x> layer 11."""
    make_tree(tmp_path, {**CLEAN_TREE, "clusters/groups/schema.py": "from clusters.descriptor.server import S\n"})
    assert (
        "clusters/groups/schema.py:1: upward import: clusters.groups.schema (4 cluster descriptions) → "
        "clusters.descriptor.server (11 cluster servers)"
    ) in lines(cl.check(tmp_path))
    # The endpoint tree mounting the Descriptor server itself: upward, and a cycle with the server that reads it.
    tree = make_tree(
        tmp_path / "tree", {**CLEAN_TREE, "jfds_device/datamodel/node.py": "import clusters.descriptor.server\n"}
    )
    assert sorted(v.kind for v in cl.check(tree)) == ["cycle", "module cycle", "upward import"]


def test_the_same_layer_is_allowed_sideways(tmp_path: Path) -> None:
    make_tree(
        tmp_path,
        {**CLEAN_TREE, "jfds_device/onboarding.py": "", "jfds_device/qr.py": "import jfds_device.onboarding\n"},
    )
    assert cl.check(tmp_path) == []


# ---------------------------------------------------------------------------------------------- (b) cycles


def test_a_cycle_between_components_of_one_layer_fails(tmp_path: Path) -> None:
    """onboarding and qr are both layer 3: no upward import, but a cycle between two components."""
    make_tree(
        tmp_path,
        {**CLEAN_TREE, "jfds_device/onboarding.py": "from jfds_device.qr import encode\n"},
    )
    [cycle] = [v for v in cl.check(tmp_path) if v.kind == "cycle"]
    assert "jfds_device.onboarding → jfds_device.qr → jfds_device.onboarding" in cycle.message
    assert "jfds_device/onboarding.py:1" in cycle.message and "jfds_device/qr.py:1" in cycle.message


def test_a_cycle_hidden_in_a_function_is_still_a_cycle(tmp_path: Path) -> None:
    make_tree(
        tmp_path,
        {**CLEAN_TREE, "clusters/descriptor/schema.py": "def f():\n    from clusters.groups.schema import X\n"},
    )
    kinds = sorted(v.kind for v in cl.check(tmp_path))
    assert kinds == ["cycle", "in-function import", "module cycle"]


def test_a_module_cycle_inside_one_component_fails(tmp_path: Path) -> None:
    make_tree(
        tmp_path,
        {
            **CLEAN_TREE,
            "jfds_device/codec/tlv.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n"
            "    from jfds_device.codec.schema import Struct\n",
        },
    )
    found = {v.kind: v for v in cl.check(tmp_path)}
    assert set(found) == {"TYPE_CHECKING import", "module cycle"}
    assert (
        "jfds_device.codec.schema → jfds_device.codec.tlv → jfds_device.codec.schema" in found["module cycle"].message
    )


# ---------------------------------------------------------------------------------------------- (c) deferred


@pytest.mark.parametrize(
    ("text", "kind", "line"),
    [
        ("def f():\n    from jfds_device.errors import MatterError\n", "in-function import", 2),
        ("class C:\n    def m(self):\n        import jfds_device.errors\n", "in-function import", 3),
        ("f = lambda: __import__('jfds_device.errors')\n", "in-function import", 1),
        ("import importlib\n\ndef f():\n    importlib.import_module('jfds_device.errors')\n", "in-function import", 4),
        (
            "import typing\nif typing.TYPE_CHECKING:\n    from jfds_device.errors import MatterError\n",
            "TYPE_CHECKING import",
            3,
        ),
    ],
)
def test_a_deferred_import_fails_unless_allowed(tmp_path: Path, text: str, kind: str, line: int) -> None:
    make_tree(tmp_path, {**CLEAN_TREE, "jfds_device/codec/tlv.py": text})
    assert lines(cl.check(tmp_path)) == [
        f"jfds_device/codec/tlv.py:{line}: {kind}: jfds_device.codec.tlv (2 codec) → jfds_device.errors (1 base)"
    ]
    allowance = cl.AllowedImport("jfds_device.codec.tlv", "jfds_device.errors", "a test")
    assert cl.check(tmp_path, allowed=(*cl.DEFERRED_IMPORTS_ALLOWED, allowance)) == []


def test_module_level_conditional_and_class_body_imports_are_module_imports(tmp_path: Path) -> None:
    text = (
        "try:\n    import jfds_device.errors\nexcept ImportError:\n    pass\n"
        "class C:\n    from jfds_device.errors import MatterError\n"
    )
    make_tree(tmp_path, {**CLEAN_TREE, "jfds_device/codec/tlv.py": text})
    assert cl.check(tmp_path) == []


def test_an_allowance_nothing_uses_any_more_is_reported(tmp_path: Path) -> None:
    make_tree(tmp_path, {**CLEAN_TREE, "jfds_device/cli.py": "from jfds_device.node.app import run\n"})
    [stale] = cl.check(tmp_path)
    assert stale.kind == "stale allowance" and "jfds_device.cli → jfds_device.**" in stale.message


def test_an_allowance_is_a_pair_of_table_patterns(tmp_path: Path) -> None:
    make_tree(tmp_path, {**CLEAN_TREE, "jfds_device/qr.py": "def f():\n    import jfds_device.codec.tlv\n"})
    assert [v.kind for v in cl.check(tmp_path)] == ["in-function import"]
    codec = cl.AllowedImport("jfds_device.*", "jfds_device.codec.**", "a test")
    assert cl.check(tmp_path, allowed=(*cl.DEFERRED_IMPORTS_ALLOWED, codec)) == []
    schema_only = cl.AllowedImport("jfds_device.*", "jfds_device.codec.schema", "a test")
    assert sorted(v.kind for v in cl.check(tmp_path, allowed=(*cl.DEFERRED_IMPORTS_ALLOWED, schema_only))) == [
        "in-function import",
        "stale allowance",
    ]


def test_every_allowance_gives_a_reason() -> None:
    for allowance in cl.DEFERRED_IMPORTS_ALLOWED:
        assert len(allowance.reason.split()) >= 5, allowance


# ---------------------------------------------------------------------------------------------- (d) the table


def test_a_module_outside_the_table_fails(tmp_path: Path) -> None:
    unmapped = "/".join(("jfds_device", "gadget.py"))  # in parts: test_repo_stands_alone wants named paths to exist
    make_tree(tmp_path, {**CLEAN_TREE, unmapped: ""})
    assert lines(cl.check(tmp_path)) == [f"{unmapped}:1: unmapped: jfds_device.gadget is not in the layer table"]


def test_a_file_that_does_not_parse_is_reported_not_skipped(tmp_path: Path) -> None:
    make_tree(tmp_path, {**CLEAN_TREE, "jfds_device/codec/tlv.py": "def (:\n"})
    assert [v.kind for v in cl.check(tmp_path)] == ["unparsable"]


def test_the_table_is_numbered_bottom_up_and_each_module_has_one_most_specific_pattern() -> None:
    assert [layer.number for layer in cl.LAYERS] == list(range(1, len(cl.LAYERS) + 1))
    patterns = [p for layer in cl.LAYERS for p in layer.patterns]
    assert len(patterns) == len(set(patterns))
    for module in cl.discover_modules(REPO_ROOT):
        matches = [(cl._specificity(p), p) for p in patterns if cl._pattern_match(p, module) is not None]
        best = max(matches)[0]
        assert [p for s, p in matches if s == best] == [max(matches)[1]], module


@pytest.mark.parametrize(
    ("module", "layer", "component"),
    [
        ("jfds_device.errors", 1, "jfds_device.errors"),
        ("jfds_device.codec.tlv", 2, "jfds_device.codec"),
        ("jfds_device.qr", 3, "jfds_device.qr"),
        ("clusters.descriptor.schema", 4, "clusters.descriptor.schema"),
        ("clusters.descriptor.server", 11, "clusters.descriptor"),
        ("clusters.joint_fabric_datastore.logic_entries", 11, "clusters.joint_fabric_datastore"),
        ("jfds_device.datastore.jfds", 8, "jfds_device.datastore"),
        ("jfds_device.fabrics", 10, "jfds_device.fabrics"),
        ("jfds_device", 14, "jfds_device"),
    ],
)
def test_modules_land_in_their_layer_and_component(module: str, layer: int, component: str) -> None:
    found = cl.locate(module)
    assert found is not None and (found[0].number, found[1]) == (layer, component)


def test_the_readme_architecture_table_is_the_checkers_table() -> None:
    readme = (REPO_ROOT / "README.md").read_text(encoding="utf-8")
    section = readme.split("## Architecture", 1)[1].split("\n## ", 1)[0]
    table = re.search(r"^\|.*?(?=\n(?!\|))", section, re.MULTILINE | re.DOTALL)
    assert table is not None
    assert table.group(0) + "\n" == cl.render_table()
    printed = run_tool("--print-table")
    assert (printed.returncode, printed.stdout) == (0, cl.render_table())


def test_ci_runs_the_checker_before_pytest() -> None:
    script = (REPO_ROOT / ".ci" / "run").read_text(encoding="utf-8")
    step = script.index(".venv/bin/python tools/check_layers.py")
    assert step < script.index(".venv/bin/pytest")


# ---------------------------------------------------------------------------------------------- this repository


def test_the_repository_keeps_its_layers() -> None:
    """No upward import, no cycle, no unlisted deferred import anywhere under jfds_device/ and clusters/."""
    violations = lines(cl.check(REPO_ROOT))
    assert violations == [], "\n".join(violations)


# ---------------------------------------------------------------------------------------------- random graphs

# Modules of several layers and components (packages, single modules, cluster schemas and servers, package inits).
GRAPH_MODULES = (
    "jfds_device/errors.py",
    "jfds_device/codec/__init__.py",
    "jfds_device/codec/tlv.py",
    "jfds_device/codec/schema.py",
    "jfds_device/onboarding.py",
    "jfds_device/qr.py",
    "clusters/__init__.py",
    "clusters/user_label/schema.py",
    "clusters/user_label/server.py",
    "clusters/descriptor/schema.py",
    "clusters/descriptor/server.py",
    "jfds_device/transport/sessions.py",
    "jfds_device/transport/eviction.py",
    "jfds_device/datastore/jfds.py",
    "jfds_device/node/app.py",
    "jfds_device/cli.py",
)
STATEMENTS = {
    "module": "import {name}\n",
    "in-function": "def f{n}():\n    import {name}\n",
    "TYPE_CHECKING": "import typing\nif typing.TYPE_CHECKING:\n    import {name}\n",
}


def _module_name(path: str) -> str:
    parts = path.removesuffix(".py").split("/")
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _groups_in_cycles(edges: set[tuple[str, str]]) -> int:
    """How many groups of mutually reachable nodes (more than one node) the graph has, by transitive closure."""
    nodes = {n for edge in edges for n in edge}
    reach = {n: {b for a, b in edges if a == n} for n in nodes}
    changed = True
    while changed:
        changed = False
        for n in nodes:
            wider = reach[n].union(*(reach[m] for m in reach[n]))
            if wider != reach[n]:
                reach[n], changed = wider, True
    groups = {frozenset({n} | {m for m in reach[n] if n in reach[m]}) for n in nodes}
    return sum(1 for g in groups if len(g) > 1)


edge_lists = st.lists(
    st.tuples(
        st.integers(0, len(GRAPH_MODULES) - 1),
        st.integers(0, len(GRAPH_MODULES) - 1),
        st.sampled_from(list(STATEMENTS)),
    ).filter(lambda e: e[0] != e[1]),
    unique_by=lambda e: (e[0], e[1]),
    max_size=25,
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(edges=edge_lists)
def test_random_import_graphs_are_judged_like_a_reference(
    tmp_path_factory: pytest.TempPathFactory, edges: list
) -> None:
    """Every upward edge, every deferred import and every cycle is reported, and nothing else, on any graph."""
    root = tmp_path_factory.mktemp("graph")
    texts = {path: "" for path in GRAPH_MODULES}
    for n, (a, b, kind) in enumerate(edges):
        texts[GRAPH_MODULES[a]] += STATEMENTS[kind].format(name=_module_name(GRAPH_MODULES[b]), n=n)
    make_tree(root, texts)
    violations = cl.check(root, allowed=())

    named = [(_module_name(GRAPH_MODULES[a]), _module_name(GRAPH_MODULES[b]), kind) for a, b, kind in edges]
    where = {m: cl.locate(m) for m, _, _ in named} | {m: cl.locate(m) for _, m, _ in named}
    upward = {(a, b) for a, b, _ in named if where[b][0].number > where[a][0].number}
    reported_upward = {tuple(v.message.split(" → ")) for v in violations if v.kind == "upward import"}
    assert {(a.split(" (")[0], b.split(" (")[0]) for a, b in reported_upward} == upward
    assert sum(v.kind.endswith(" import") and v.kind != "upward import" for v in violations) == sum(
        kind != "module" for _, _, kind in named
    )
    components = {(where[a][1], where[b][1]) for a, b, _ in named if where[a][1] != where[b][1]}
    assert sum(v.kind == "cycle" for v in violations) == _groups_in_cycles(components)
    assert sum(v.kind == "module cycle" for v in violations) == _groups_in_cycles({(a, b) for a, b, _ in named})
    assert {v.kind for v in violations} <= {
        "upward import",
        "in-function import",
        "TYPE_CHECKING import",
        "cycle",
        "module cycle",
    }
