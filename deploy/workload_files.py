"""Files written from the workload registry, so that none of them lists workloads by hand.

Run `python deploy/workload_files.py` after adding or changing a workload
(or installing a plug-in you want in them); a test fails when a file is
stale. It writes the Kubernetes ConfigMap's schedules (the embedded default
schedules, on every device of the node) and docs/workloads.md's table of
workloads and presets.
"""

from __future__ import annotations

import sys
from pathlib import Path

from benchd import catalog
from benchd.catalog import suites
from benchd.server.config import default_workloads

ROOT = Path(__file__).resolve().parent.parent
CONFIGMAP = ROOT / "deploy" / "kubernetes" / "base" / "configmap.yaml"
WORKLOADS_DOC = ROOT / "docs" / "workloads.md"
TABLE_START = "<!-- workload table: written by deploy/workload_files.py -->"
TABLE_END = "<!-- end of workload table -->"

CONFIGMAP_HEAD = """\
# benchd's configuration (docs/api.md): mounted at /etc/benchd/benchd.toml.
# Written by deploy/workload_files.py from the workload registry: edit that, not the schedules here.
apiVersion: v1
kind: ConfigMap
metadata:
  name: benchd-config
  namespace: benchd
  labels:
    app.kubernetes.io/name: benchd
data:
  benchd.toml: |
    [schedule]
    jitter = "10m"
    start_delay = "2m"

    [busy_check]
    enabled = true
    max_cpu_load = 0.5
    gpu_processes = true

    # The default schedules, as on every other host (docs/cli.md), on every accelerator of the node
    # one after another (the CPU where there is none): a slow outlier GPU is found too.
"""


def configmap() -> str:
    tables = [
        f'    [workloads.{name}]\n    suite = "{table["suite"]}"\n    device = "all"\n'
        f'    interval = "{table["interval"]}"\n'
        for name, table in default_workloads().items()
    ]
    return CONFIGMAP_HEAD + "\n".join(tables)


def _preset_cell(workload: catalog.Workload) -> str:
    return "<br>".join(
        f"`{p.name}`: batch {p.batch_size}, {workload.parameters(p.options):,} parameters"
        for p in workload.presets
    )


def _options_cell(workload: catalog.Workload) -> str:
    parts = []
    for option in workload.options:
        step = f", multiple of {option.multiple_of}" if option.multiple_of > 1 else ""
        parts.append(f"`{option.name}` ({option.minimum}-{option.maximum:,}{step})")
    return ", ".join(parts) or "none"


def workloads_table() -> str:
    rows = [
        "| workload | what | dataset | presets | options | suites |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    known = suites.suites()
    for workload in catalog.WORKLOADS.values():
        member_of = ", ".join(f"`{s}`" for s, members in known.items() if workload.name in members) or "none"
        rows.append(
            f"| `{workload.name}` | {workload.title} | `{workload.dataset}` ({workload.sample_unit}) | "
            f"{_preset_cell(workload)} | {_options_cell(workload)} | {member_of} |"
        )
    return "\n".join(rows)


def workloads_doc() -> str:
    text = WORKLOADS_DOC.read_text()
    before, rest = text.split(TABLE_START, 1)
    _old, after = rest.split(TABLE_END, 1)
    return f"{before}{TABLE_START}\n{workloads_table()}\n{TABLE_END}{after}"


def outputs() -> dict[Path, str]:
    return {CONFIGMAP: configmap(), WORKLOADS_DOC: workloads_doc()}


def main() -> None:
    for path, text in outputs().items():
        path.write_text(text)
        print(f"wrote {path.relative_to(ROOT)}", file=sys.stderr)


if __name__ == "__main__":
    main()
