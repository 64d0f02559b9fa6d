"""The workload registry: found through entry points, nothing else lists workloads, bad plug-ins left out."""

from __future__ import annotations

import ast
from dataclasses import replace
from pathlib import Path

from benchd import catalog
from benchd.catalog import registry

ROOT = Path(__file__).resolve().parent.parent
BUILT_IN = ("dcgan", "gpt", "siamese", "transformer", "vae")


def _string_literals(path: Path) -> set[str]:
    """Every string constant in the module's code, docstrings left out (prose may give examples)."""
    tree = ast.parse(path.read_text())
    docstrings = {
        id(node.body[0].value)
        for node in ast.walk(tree)
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef))
        and node.body
        and isinstance(node.body[0], ast.Expr)
        and isinstance(node.body[0].value, ast.Constant)
    }
    return {
        node.value
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings
    }


def test_the_built_ins_are_registered_as_plug_ins_are() -> None:
    assert tuple(catalog.WORKLOADS) == BUILT_IN
    assert {p.name for p in registry.entry_points(group=registry.GROUP)} >= set(BUILT_IN)
    assert registry.discover().problems == ()


def test_no_module_but_a_workloads_own_folder_names_it() -> None:
    """Adding a workload is adding a folder: the daemon, the harness and the shared trainer code hold no
    list of workloads (or of their datasets, outside the dataset modules) to extend."""
    datasets = set(catalog.datasets())
    offenders = []
    for path in sorted([*(ROOT / "daemon").rglob("*.py"), *(ROOT / "workloads").rglob("*.py")]):
        relative = path.relative_to(ROOT)
        folder = relative.parts[1] if relative.parts[0] == "workloads" and len(relative.parts) > 2 else None
        named = _string_literals(path) & (set(BUILT_IN) - {folder})
        if relative.parts[:2] != ("daemon", "datasets"):
            named |= _string_literals(path) & datasets
        if named:
            offenders.append(f"{relative}: {sorted(named)}")
    assert offenders == []


class _Point:
    """An entry point whose object is given, as importlib.metadata would load it."""

    def __init__(self, name: str, loaded: object, module: str = "tests") -> None:
        self.name, self.value, self.loaded = name, f"{module}:{name}", loaded

    def load(self) -> object:
        if isinstance(self.loaded, Exception):
            raise self.loaded
        return self.loaded


def test_a_broken_or_inconsistent_plug_in_is_left_out_with_the_reason(monkeypatch) -> None:
    vae = catalog.get_workload("vae")
    transformer = catalog.get_workload("transformer")
    points = [
        _Point("vae", vae, "benchd.workloads.vae"),
        _Point("vae", replace(vae, title="A plug-in's VAE")),
        _Point("broken", ImportError("No module named 'torch_nightly'")),
        _Point("wrong-type", {"name": "wrong-type"}),
        _Point("misnamed", replace(vae, name="other")),
        _Point("Bad_Name", replace(vae, name="Bad_Name")),
        _Point("no-presets", replace(vae, name="no-presets", presets=())),
        _Point("loose-preset", replace(transformer, name="loose-preset", options=transformer.options[:1])),
        _Point(
            "bad-bounds",
            replace(
                transformer,
                name="bad-bounds",
                options=(replace(transformer.options[0], maximum=100), *transformer.options[1:]),
            ),
        ),
        _Point("other-mnist", replace(vae, name="other-mnist", data=replace(vae.data, train_samples=5))),
    ]
    monkeypatch.setattr(registry, "entry_points", lambda group: points if group == registry.GROUP else [])
    registry.discover.cache_clear()
    try:
        found = registry.discover()
        assert list(found.workloads) == ["vae"] and found.workloads["vae"] is vae
        reasons = "\n".join(found.problems)
        for fragment in [
            "broken (tests:broken) left out: No module named 'torch_nightly'",
            "is a dict, not a benchd.catalog.Workload",
            "is registered as 'misnamed' but names itself 'other'",
            "name 'Bad_Name' must match",
            "no-presets (tests:no-presets) left out: declares no presets",
            "preset b20-e200-l2-h200 sets ['emsize', 'nhid', 'nlayers'], not its options",
            "options.emsize: must be between 2 and 100, got 200",
            "declares dataset 'mnist' unlike the workload that registered it",
            "vae (tests:vae) left out: 'vae' is already registered",
        ]:
            assert fragment in reasons
    finally:
        registry.discover.cache_clear()
