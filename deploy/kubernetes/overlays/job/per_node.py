"""One CronJob per GPU node, from the job overlay's cronjob.yaml: the job mode for a whole fleet.

A CronJob lands on whichever GPU node the scheduler picks, so covering every
node used to mean copying cronjob.yaml by hand for each. This prints a copy per
node instead, pinned to it (`kubernetes.io/hostname`) and named after it, each
at its own minute within a window (a stable hash of the node's name, so a
hundred nodes do not start, nor fetch data, at once, and rerunning this keeps
every node's time):

    kubectl get nodes -l nvidia.com/gpu.present=true -o name \\
      | python deploy/kubernetes/overlays/job/per_node.py --window 2h | kubectl apply -f -

Node names come as arguments or one per line on stdin (`node/NAME` as kubectl
prints them, or NAME). The rendered CronJobs carry the images component's
image, as the overlay's do.
"""

from __future__ import annotations

import argparse
import copy
import hashlib
import re
import sys
from pathlib import Path
from typing import Any

import yaml

HERE = Path(__file__).resolve().parent
IMAGES = HERE.parent.parent / "components" / "images" / "kustomization.yaml"
MAX_NAME = 52  # a CronJob's name leaves room for the Job and Pod suffixes Kubernetes appends


def _minutes(text: str) -> int:
    match = re.fullmatch(r"(\d+)([mh])", text)
    if not match or int(match.group(1)) == 0:
        raise argparse.ArgumentTypeError(f"{text!r} is not a window such as 90m or 2h")
    minutes = int(match.group(1)) * (60 if match.group(2) == "h" else 1)
    if minutes > 24 * 60:
        raise argparse.ArgumentTypeError(f"{text!r} is longer than a day")
    return minutes


def offset_minutes(node: str, window: int) -> int:
    """Where in the window a node's run starts: stable across runs of this command, spread across nodes."""
    return int.from_bytes(hashlib.sha256(node.encode()).digest()[:8], "big") % window


def _image() -> str:
    images = yaml.safe_load(IMAGES.read_text())["images"]
    found = next(entry for entry in images if entry["name"] == "benchd")
    return f"{found['newName']}:{found['newTag']}"


def _name(node: str) -> str:
    slug = re.sub(r"[^a-z0-9-]+", "-", node.lower()).strip("-")
    digest = hashlib.sha256(node.encode()).hexdigest()[:6]  # two long names that share a prefix stay apart
    return f"benchd-suite-{slug}"[: MAX_NAME - 7].rstrip("-") + f"-{digest}"


def cronjobs(nodes: list[str], window: int) -> list[dict[str, Any]]:
    template = yaml.safe_load((HERE / "cronjob.yaml").read_text())
    start_minute, start_hour = (int(field) for field in template["spec"]["schedule"].split()[:2])
    rendered = []
    for node in sorted(set(nodes)):
        job = copy.deepcopy(template)
        at = start_hour * 60 + start_minute + offset_minutes(node, window)
        job["metadata"]["name"] = _name(node)
        job["spec"]["schedule"] = f"{at % 60} {at // 60 % 24} * * *"
        pod = job["spec"]["jobTemplate"]["spec"]["template"]["spec"]
        pod["nodeSelector"] = {**pod.get("nodeSelector", {}), "kubernetes.io/hostname": node}
        for container in pod["containers"]:
            container["image"] = _image()
        rendered.append(job)
    return rendered


def node_names(arguments: list[str], stdin: str) -> list[str]:
    given = arguments or stdin.split()
    return [name.removeprefix("node/") for name in given if name.strip()]


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description="Print one benchd suite CronJob per GPU node.")
    parser.add_argument("nodes", nargs="*", help="node names (default: one per line on stdin)")
    parser.add_argument("--window", type=_minutes, default=120, help="spread start times over this (2h)")
    chosen = parser.parse_args(argv)
    nodes = node_names(chosen.nodes, "" if chosen.nodes else sys.stdin.read())
    if not nodes:
        parser.error("no node names: give them as arguments or on stdin")
    sys.stdout.write(yaml.safe_dump_all(cronjobs(nodes, chosen.window), sort_keys=False))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
