"""Files written from benchd's declared contracts, so that none of them restates one by hand.

Run `python deploy/contract_files.py` after adding or changing a workload
(or installing a plug-in you want in them) or a metric; a test fails when a
file is stale. From the workload registry: the Kubernetes ConfigMap's
schedules (the embedded default schedules, on every device of the node) and
docs/workloads.md's table of workloads and presets. From the metric table
(benchd/metric_contract.py): docs/metrics.md's reference tables.
"""

from __future__ import annotations

import sys
from pathlib import Path

from benchd import catalog
from benchd import metric_contract as contract
from benchd.catalog import suites
from benchd.settings import default_workloads

ROOT = Path(__file__).resolve().parent.parent
CONFIGMAP = ROOT / "deploy" / "kubernetes" / "base" / "configmap.yaml"
WORKLOADS_DOC = ROOT / "docs" / "workloads.md"
METRICS_DOC = ROOT / "docs" / "metrics.md"
TABLE_START = "<!-- workload table: written by deploy/contract_files.py -->"
TABLE_END = "<!-- end of workload table -->"
METRICS_END = "<!-- end of metrics -->"

CONFIGMAP_HEAD = """\
# benchd's configuration (docs/api.md): mounted at /etc/benchd/benchd.toml.
# Written by deploy/contract_files.py from the workload registry: edit that, not the schedules here.
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


def _between(text: str, start: str, end: str, table: str) -> str:
    """`text` with what lies between the two markers replaced by `table`."""
    before, rest = text.split(start, 1)
    _old, after = rest.split(end, 1)
    return f"{before}{start}\n{table}\n{end}{after}"


def _cell(markdown: str) -> str:
    return markdown.replace("|", "\\|")


KIND_TEXT = {contract.INFO: "gauge (info)", contract.STATESET: "gauge (state set)"}


def metrics_table(section: str) -> str:
    rows = ["| metric | type | labels | meaning | example |", "| --- | --- | --- | --- | --- |"]
    for metric in contract.METRICS:
        if metric.section == section:
            labels = metric.labels_doc or ", ".join(f"`{label}`" for label in metric.labels)
            kind = KIND_TEXT.get(metric.kind, metric.kind)
            rows.append(
                f"| `{metric.name}` | {kind} | {_cell(labels)} | {_cell(metric.meaning)} | {_cell(metric.example)} |"
            )
    return "\n".join(rows)


def metrics_doc() -> str:
    text = METRICS_DOC.read_text()
    for section in contract.SECTIONS:
        text = _between(text, f"<!-- metrics: {section} -->", METRICS_END, metrics_table(section))
    return text


def outputs() -> dict[Path, str]:
    return {
        CONFIGMAP: configmap(),
        WORKLOADS_DOC: _between(WORKLOADS_DOC.read_text(), TABLE_START, TABLE_END, workloads_table()),
        METRICS_DOC: metrics_doc(),
    }


def main() -> None:
    for path, text in outputs().items():
        path.write_text(text)
        print(f"wrote {path.relative_to(ROOT)}", file=sys.stderr)


if __name__ == "__main__":
    main()
