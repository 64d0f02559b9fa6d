"""The image, the compose stack, the Kubernetes manifests and the service units: linted and checked."""

from __future__ import annotations

import plistlib
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from benchd.server.config import settings_from_tree, tomllib  # tomli on Python 3.10

ROOT = Path(__file__).resolve().parent.parent
KUBERNETES = sorted((ROOT / "deploy" / "kubernetes").glob("*.yaml"))
BIN = Path(sys.executable).parent


def tool(name: str) -> str:
    path = BIN / name if (BIN / name).exists() else shutil.which(name)
    if path is None:
        pytest.fail(f"{name} is missing: it is in the test extra (pip install -e '.[test]')")
    return str(path)


def test_dockerfile_is_lint_clean() -> None:
    result = subprocess.run(
        [tool("hadolint"), str(ROOT / "Dockerfile")], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_dockerfile_build_steps_work_outside_docker(tmp_path: Path) -> None:
    """The dependency layer's requirement list, and the source layer's no-deps install, run here too."""
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert "print_requirements.py /src/pyproject.toml" in dockerfile
    listed = subprocess.run(
        [sys.executable, str(ROOT / "deploy" / "print_requirements.py"), str(ROOT / "pyproject.toml")],
        capture_output=True, text=True, check=True,
    ).stdout.split("\n")  # fmt: skip
    names = {re.split(r"[<>=!~;\[ ]", line, maxsplit=1)[0] for line in listed if line}
    assert {"lmdb", "prometheus-client", "typer", "psutil", "nvidia-ml-py", "starlette", "uvicorn"} <= names
    assert not names & {"torch", "torchvision"}  # installed from the variant's own index
    wheel = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(tmp_path),
         str(ROOT)],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert wheel.returncode == 0, wheel.stderr
    assert list(tmp_path.glob("benchd-*.whl"))


def test_kubernetes_manifests_validate() -> None:
    result = subprocess.run(
        [tool("kubernetes-validate"), "--strict", "--quiet", *map(str, KUBERNETES)],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    kustomization = yaml.safe_load((ROOT / "deploy" / "kubernetes" / "kustomization.yaml").read_text())
    assert sorted(kustomization["resources"]) == sorted(
        p.name for p in KUBERNETES if p.name != "kustomization.yaml"
    )


def test_kubernetes_rules_are_the_prometheus_rules() -> None:
    rule = yaml.safe_load((ROOT / "deploy" / "kubernetes" / "prometheusrule.yaml").read_text())
    plain = yaml.safe_load((ROOT / "deploy" / "prometheus" / "rules" / "benchd.rules.yml").read_text())
    assert rule["spec"]["groups"] == plain["groups"]


def test_daemonset_essentials_and_shipped_config() -> None:
    daemonset = yaml.safe_load((ROOT / "deploy" / "kubernetes" / "daemonset.yaml").read_text())
    pod = daemonset["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert container["resources"]["limits"]["nvidia.com/gpu"] == 1
    assert {e["name"] for e in container["env"]} >= {"NODE_NAME", "BENCHD_TOKEN", "BENCHD_HOST"}
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert pod["tolerations"] and pod["nodeSelector"]
    configmap = yaml.safe_load((ROOT / "deploy" / "kubernetes" / "configmap.yaml").read_text())
    settings = settings_from_tree(tomllib.loads(configmap["data"]["benchd.toml"]))
    assert {s.workload for s in settings.schedules} == {"vae", "siamese", "transformer", "dcgan"}


def test_compose_stack_references_files_that_exist() -> None:
    compose_dir = ROOT / "deploy" / "compose"
    stack = yaml.safe_load((compose_dir / "compose.yaml").read_text())
    assert {"benchd", "benchd-cpu", "prometheus", "alertmanager", "grafana", "fetch-data"} <= set(
        stack["services"]
    )
    gpu = stack["services"]["benchd"]["deploy"]["resources"]["reservations"]["devices"][0]
    assert gpu["capabilities"] == ["gpu"]
    for service in stack["services"].values():
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("."):
                assert (compose_dir / source).exists(), source
    prometheus = yaml.safe_load((ROOT / "deploy" / "prometheus" / "prometheus.yml").read_text())
    assert prometheus["scrape_configs"][0]["static_configs"][0]["targets"] == ["benchd:9655"]


def test_service_units() -> None:
    unit = (ROOT / "deploy" / "systemd" / "benchd.service").read_text()
    assert re.search(r"^ExecStart=\S+/benchd serve", unit, re.MULTILINE)
    assert "KillSignal=SIGTERM" in unit and "User=benchd" in unit
    plist = plistlib.loads((ROOT / "deploy" / "launchd" / "io.benchd.daemon.plist").read_bytes())
    assert plist["ProgramArguments"][1:] == ["serve"]


def test_every_alert_has_a_runbook_section() -> None:
    runbook = (ROOT / "docs" / "runbook.md").read_text()
    anchors = {heading.lower() for heading in re.findall(r"^## (\w+)$", runbook, re.MULTILINE)}
    for path in (ROOT / "deploy" / "prometheus" / "rules").glob("*.yml"):
        for group in yaml.safe_load(path.read_text())["groups"]:
            for rule in group["rules"]:
                if "alert" in rule:
                    url = rule["annotations"]["runbook_url"]
                    assert url.endswith(f"#{rule['alert'].lower()}") and rule["alert"].lower() in anchors
                    assert {"severity"} <= set(rule["labels"]) and {"summary", "description"} <= set(
                        rule["annotations"]
                    )
