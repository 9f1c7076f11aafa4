"""The shape of the package: its layers import only downward, the module import graph has no cycle,
no two modules share a name, and one module names files."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import hplandscape

PACKAGE = Path(hplandscape.__file__).resolve().parent


def _modules() -> dict[str, Path]:
    out = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        out[name] = path
    return out


def _runtime_nodes(tree):
    """Every node of ``tree`` except those under ``if TYPE_CHECKING:``."""
    stack = [tree]
    while stack:
        node = stack.pop()
        yield node
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and isinstance(child.test, ast.Name) and child.test.id == "TYPE_CHECKING":
                stack.extend(child.orelse)
                continue
            stack.append(child)


def import_graph() -> dict[str, set[str]]:
    """Module → the hplandscape modules it imports anywhere (top level or inside functions).

    A package importing its own submodules (re-exports in ``__init__``) is not an edge, nor is an
    import under ``if TYPE_CHECKING:`` (for annotations only: nothing runs it).
    """
    mods = _modules()
    graph = {m: set() for m in mods}
    for name, path in mods.items():
        for node in _runtime_nodes(ast.parse(path.read_text())):
            targets = []
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("hplandscape"):
                targets = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
            elif isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            for t in targets:
                if t in mods and t != name and not t.startswith(name + ".") and not name.startswith(t + "."):
                    graph[name].add(t)
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}  # 1 on the stack, 2 done

    def visit(node, path):
        state[node] = 1
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return path + [node, nxt]
            if nxt not in state:
                found = visit(nxt, path + [node])
                if found:
                    return found
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state:
            found = visit(node, [])
            if found:
                return found
    return None


#: The layers, bottom first (docs/architecture.md draws them): a module may import its own layer and
#: those below it, never one above. The foundation is the package's top-level modules; the CLI
#: sits on everything.
LAYERS = (
    ("hplandscape", "hplandscape.errors", "hplandscape.atomic", "hplandscape.path_checks", "hplandscape.choices",
     "hplandscape.provenance", "hplandscape.user_code"),
    ("hplandscape.models",),
    ("hplandscape.pruning",),
    ("hplandscape.study",),
    ("hplandscape.store",),
    ("hplandscape.training",),
    ("hplandscape.analysis",),
    ("hplandscape.run",),
    ("hplandscape.plots",),
    ("hplandscape.report",),
    ("hplandscape.interop",),
    ("hplandscape.cli", "hplandscape.__main__"),
)


def layer_of(module: str, layers=LAYERS) -> int:
    """The index of the layer ``module`` belongs to (the longest name that contains it)."""
    found = [(len(name), i) for i, names in enumerate(layers) for name in names
             if module == name or module.startswith(name + ".")]
    if not found:
        raise AssertionError(f"{module} is in no layer: add it to LAYERS and docs/architecture.md")
    return max(found)[1]


def upward_imports(graph: dict[str, set[str]], layers=LAYERS) -> list[str]:
    return [f"{a} -> {b}" for a in sorted(graph) for b in sorted(graph[a])
            if layer_of(b, layers) > layer_of(a, layers)]


def test_the_layer_check_finds_an_upward_import():
    layers = (("p",), ("p.low",), ("p.high",))
    assert upward_imports({"p.low.a": {"p.high.b"}, "p.high.b": set()}, layers) == ["p.low.a -> p.high.b"]
    assert upward_imports({"p.high.b": {"p.low.a", "p"}, "p.low.a": set()}, layers) == []


def test_every_module_is_in_a_layer_and_imports_only_downward():
    graph = import_graph()
    for module in graph:
        layer_of(module)
    assert upward_imports(graph) == []


def test_no_two_modules_share_a_name():
    """A name says what a module holds, once: ``from ... import sections`` never needs its package to
    be told apart from another."""
    by_name: dict[str, list[str]] = {}
    for module, path in _modules().items():
        if path.stem not in ("__init__", "__main__"):
            by_name.setdefault(path.stem, []).append(module)
    assert {n: m for n, m in by_name.items() if len(m) > 1} == {}


def test_every_package_is_installed():
    """setup.cfg lists packages one by one: one left out would be missing from a non-editable install."""
    import configparser

    cfg = configparser.ConfigParser()
    cfg.read(PACKAGE.parent / "setup.cfg")
    listed = set(cfg["options"]["packages"].split())
    packages = {".".join(p.parent.relative_to(PACKAGE.parent).parts) for p in PACKAGE.rglob("__init__.py")}
    assert packages - listed == set()


def test_cycle_finder_finds_a_cycle():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) is not None
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": set()}) is None


def test_module_import_graph_has_no_cycle():
    cycle = find_cycle(import_graph())
    assert cycle is None, " -> ".join(cycle)


def test_data_flows_one_way_through_the_orchestration():
    graph = import_graph()
    # The worker side never reaches back into planning or running; the plan never launches.
    assert not graph["hplandscape.run.worker"] & {"hplandscape.run.sweep", "hplandscape.run.plan",
                                                  "hplandscape.run.local_runner", "hplandscape.run.slurm_runner"}
    assert not graph["hplandscape.run.plan"] & {"hplandscape.run.executors", "hplandscape.run.worker",
                                                "hplandscape.run.local_runner", "hplandscape.run.slurm_runner",
                                                "hplandscape.run.sweep"}
    assert not graph["hplandscape.store.study_store"] & {"hplandscape.run.plan", "hplandscape.run.sweep", "hplandscape.run.status"}


def test_the_record_schema_sits_below_everything_that_reads_or_writes_records():
    """store/run_record.py is read by the engines, the store, the results table and the analysis: it may
    import nothing of theirs (nor torch, which ``test_record`` checks), or analysis would pull in
    training code through it."""
    graph = import_graph()
    assert graph["hplandscape.store.run_record"] <= {"hplandscape.errors", "hplandscape.study.recipes"}
    for reader in ("hplandscape.training.lifecycle", "hplandscape.store.study_store", "hplandscape.store.results", "hplandscape.analysis.results_io"):
        assert "hplandscape.store.run_record" in graph[reader], reader


def test_only_the_store_builds_run_ids_and_study_file_names():
    """A run id or a study file name written by hand elsewhere would drift from the store's (run ids
    are built by the list of a study's runs, file names by the store's layout)."""
    offenders = []
    for name, path in _modules().items():
        if name in ("hplandscape.store.layout", "hplandscape.study.runs"):
            continue
        text = path.read_text()
        # a path joined by hand: ``folder / "record.json"`` (a label such as source="study.yaml" is fine)
        if re.search(r"/seed\{", text) or re.search(r"(/|=)\s*[\"'](record\.json|checkpoint\.pt|model\.pt|claim\.json|"
                                                      r"error\.json|results\.csv|study\.yaml)[\"']", text):
            offenders.append(name)
    assert offenders == []
