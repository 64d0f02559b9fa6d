"""The image, the compose stack, the Kubernetes manifests and the service units: linted and checked."""

from __future__ import annotations

import json
import plistlib
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import yaml

from benchd.settings import settings_from_tree
from benchd.settings.model import tomllib  # tomli on Python 3.10

ROOT = Path(__file__).resolve().parent.parent
KUBERNETES = ROOT / "deploy" / "kubernetes"
CLUSTER_SCOPED = {"Namespace", "PriorityClass"}
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


def test_dockerfile_takes_its_sources_as_arguments_and_checks_the_port_it_serves() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    froms = [line.split()[1] for line in dockerfile.splitlines() if line.startswith("FROM ")]
    assert all(image.startswith("${") or image.startswith("base-") for image in froms), froms
    for argument in ("CUDA_BASE", "CPU_BASE", "PIP_INDEX_URL", "TORCH_INDEX"):
        assert f"ARG {argument}" in dockerfile
    healthcheck = dockerfile[dockerfile.index("HEALTHCHECK") :].split("\n\n")[0]
    assert "9655" not in healthcheck and '"benchd", "status"' in healthcheck  # follows BENCHD_PORT


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
    (built,) = tmp_path.glob("benchd-*.whl")
    with zipfile.ZipFile(built) as archive:  # package data travels too: the shipped reference bands
        assert "benchd/health/reference_bands.json" in archive.namelist()


def kustomize(overlay: Path) -> list[dict]:
    """An overlay rendered the way `kubectl apply -k` renders it (offline)."""
    result = subprocess.run([tool("kubectl"), "kustomize", str(overlay)], capture_output=True, text=True,
                            check=False)  # fmt: skip
    assert result.returncode == 0, result.stderr
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


def by_kind(documents: list[dict]) -> dict[str, dict]:
    return {doc["kind"]: doc for doc in documents}


def _validate(documents: list[dict], tmp_path: Path) -> None:
    rendered = tmp_path / "rendered.yaml"
    rendered.write_text(yaml.safe_dump_all(documents))
    result = subprocess.run(
        [tool("kubernetes-validate"), "--strict", "--quiet", str(rendered)], capture_output=True, text=True,
        check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("overlay", ["gpu", "cpu", "job"])
def test_each_overlay_renders_and_validates(overlay: str, tmp_path: Path) -> None:
    documents = kustomize(KUBERNETES / "overlays" / overlay)
    _validate(documents, tmp_path)
    assert all(
        doc["metadata"].get("namespace") == "benchd" for doc in documents if doc["kind"] not in CLUSTER_SCOPED
    )
    kinds = by_kind(documents)
    for kind in ("ServiceMonitor", "PrometheusRule"):  # what a default kube-prometheus-stack selects
        assert kinds[kind]["metadata"]["labels"]["release"] == "kube-prometheus-stack"
    assert kinds["ConfigMap"]["metadata"]["labels"]  # (the dashboards one is checked below)
    dashboards = [d for d in documents if d["metadata"]["name"] == "benchd-grafana-dashboards"]
    assert dashboards[0]["metadata"]["labels"]["grafana_dashboard"] == "1"


def _container(documents: list[dict], kind: str) -> tuple[dict, dict]:
    workload = by_kind(documents)[kind]
    pod = workload["spec"]["template"]["spec"] if kind == "DaemonSet" else \
        workload["spec"]["jobTemplate"]["spec"]["template"]["spec"]  # fmt: skip
    (container,) = pod["containers"]
    return pod, container


def test_the_gpu_overlay_sees_every_gpu_without_reserving_one() -> None:
    pod, container = _container(kustomize(KUBERNETES / "overlays" / "gpu"), "DaemonSet")
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env["NVIDIA_VISIBLE_DEVICES"] == "all" and pod["runtimeClassName"] == "nvidia"
    assert "nvidia.com/gpu" not in str(container["resources"])  # no GPU held around the clock
    assert pod["nodeSelector"] == {"nvidia.com/gpu.present": "true"} and pod["tolerations"]
    assert {"NODE_NAME", "BENCHD_TOKEN_FILE", "BENCHD_HOST"} <= set(env) and "BENCHD_TOKEN" not in env
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    node_name = next(e for e in container["env"] if e["name"] == "NODE_NAME")
    assert node_name["valueFrom"]["fieldRef"]["fieldPath"] == "spec.nodeName"  # the host identity


def test_the_cpu_overlay_runs_the_cpu_image_off_gpu_nodes() -> None:
    pod, container = _container(kustomize(KUBERNETES / "overlays" / "cpu"), "DaemonSet")
    assert (
        container["image"] == "registry.example.internal/benchd-cpu:0.1.0" and "runtimeClassName" not in pod
    )
    assert {c["image"] for c in pod["initContainers"]} == {container["image"]}
    terms = pod["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"][
        "nodeSelectorTerms"
    ]
    assert terms[0]["matchExpressions"][0] == {"key": "nvidia.com/gpu.present", "operator": "DoesNotExist"}


def test_the_job_overlay_requests_a_gpu_only_while_the_suite_runs() -> None:
    documents = kustomize(KUBERNETES / "overlays" / "job")
    _pod, daemon = _container(documents, "DaemonSet")
    _job_pod, job = _container(documents, "CronJob")
    assert job["resources"]["limits"]["nvidia.com/gpu"] == 1 and "nvidia.com/gpu" not in str(
        daemon["resources"]
    )
    assert job["command"][:4] == ["benchd", "run", "--suite", "standard-v1"] and "args" not in job
    # A tenant's pod preempts the suite, and the suite never preempts anyone.
    priority = by_kind(documents)["PriorityClass"]
    assert _job_pod["priorityClassName"] == priority["metadata"]["name"]
    assert priority["value"] < 0 and priority["preemptionPolicy"] == "Never" and not priority["globalDefault"]
    config = next(d for d in documents if d["metadata"]["name"] == "benchd-config")
    exporter = settings_from_tree(tomllib.loads(config["data"]["benchd.toml"]))
    assert exporter.schedules == ()  # the daemon only exports what the Job recorded
    volumes = {v["name"]: v for v in by_kind(documents)["DaemonSet"]["spec"]["template"]["spec"]["volumes"]}
    job_volumes = {v["name"]: v for v in _job_pod["volumes"]}
    assert (
        job_volumes["data"]["hostPath"]["path"] == volumes["data"]["hostPath"]["path"]
    )  # one store per node


def test_the_podmonitor_component_replaces_the_servicemonitor(tmp_path: Path) -> None:
    copy = tmp_path / "kubernetes"
    shutil.copytree(KUBERNETES, copy)
    mine = copy / "overlays" / "mine"
    mine.mkdir()
    (mine / "kustomization.yaml").write_text(
        "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources:\n  - ../gpu\n"
        "components:\n  - ../../components/podmonitor\n"
    )
    kinds = by_kind(kustomize(mine))
    assert "PodMonitor" in kinds and "ServiceMonitor" not in kinds
    assert kinds["PodMonitor"]["metadata"]["labels"]["release"] == "kube-prometheus-stack"


@pytest.mark.parametrize("overlay", ["gpu", "cpu"])
def test_the_node_problem_detector_component_runs_benchd_health_as_a_custom_plugin(
    overlay: str, tmp_path: Path
) -> None:
    """A sidecar runs node-problem-detector (copied from its image) beside the daemon, with the custom
    plugin monitor that sets BenchdPerformanceDegraded from `benchd health --format npd` in 80 characters,
    and the service account Kubernetes' node-problem-detector role is bound to."""
    copy = tmp_path / "kubernetes"
    shutil.copytree(KUBERNETES, copy)
    mine = copy / "overlays" / "mine"
    mine.mkdir()
    (mine / "kustomization.yaml").write_text(
        f"apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources:\n  - ../{overlay}\n"
        "components:\n  - ../../components/node-problem-detector\n"
    )
    documents = kustomize(mine)
    kinds = by_kind(documents)
    pod = kinds["DaemonSet"]["spec"]["template"]["spec"]
    assert pod["serviceAccountName"] == kinds["ServiceAccount"]["metadata"]["name"]
    binding = kinds["ClusterRoleBinding"]
    assert binding["roleRef"]["name"] == "system:node-problem-detector"
    assert binding["subjects"][0]["name"] == pod["serviceAccountName"]
    containers = {c["name"]: c for c in [*pod["initContainers"], *pod["containers"]]}
    sidecar, daemon = containers["node-problem-detector"], containers["benchd"]
    assert sidecar["image"] == daemon["image"]  # the daemon's own image: its plugin is benchd itself
    assert sidecar["image"].startswith("registry.example.internal/")
    copied = containers["node-problem-detector-binary"]["command"][-1]
    assert sidecar["command"][0] == copied
    assert sidecar["securityContext"]["readOnlyRootFilesystem"] is True
    monitor_path = next(
        a.split("=", 1)[1] for a in sidecar["command"] if a.startswith("--config.custom-plugin")
    )
    mounts = {m["mountPath"]: m["name"] for m in sidecar["volumeMounts"]}
    volume = next(v for v in pod["volumes"] if v["name"] == mounts[str(Path(monitor_path).parent)])
    configmap = next(
        d
        for d in documents
        if d["kind"] == "ConfigMap" and d["metadata"]["name"] == volume["configMap"]["name"]
    )
    monitor = json.loads(configmap["data"][Path(monitor_path).name])
    assert monitor["plugin"] == "custom" and monitor["pluginConfig"]["max_output_length"] == 80
    (condition,) = monitor["conditions"]
    (rule,) = monitor["rules"]
    assert (
        condition["type"] == rule["condition"] == "BenchdPerformanceDegraded" and rule["type"] == "permanent"
    )
    assert (
        rule["path"] == "/opt/benchd/bin/benchd"
        and "python3 -m venv /opt/benchd" in (ROOT / "Dockerfile").read_text()
    )
    port = daemon["ports"][0]["containerPort"]
    assert rule["args"] == ["health", "--url", f"http://127.0.0.1:{port}", "--format", "npd"]
    # The plugin protocol when no daemon answers: Unknown (exit 2), one line within max_output_length.
    closed = ["health", "--url", "http://127.0.0.1:1", "--format", "npd"]
    result = subprocess.run(
        [tool("benchd"), *closed], capture_output=True, text=True, timeout=60, check=False
    )
    assert (
        result.returncode == 2 and result.stdout.startswith("unknown: ") and len(result.stdout.strip()) <= 80
    )


def test_kubernetes_rules_are_the_prometheus_rules() -> None:
    rule = yaml.safe_load((KUBERNETES / "base" / "prometheusrule.yaml").read_text())
    plain = yaml.safe_load((ROOT / "deploy" / "prometheus" / "rules" / "benchd.rules.yml").read_text())
    assert rule["spec"]["groups"] == plain["groups"]
    configmap = yaml.safe_load((KUBERNETES / "base" / "configmap.yaml").read_text())
    settings = settings_from_tree(tomllib.loads(configmap["data"]["benchd.toml"]))
    assert {s.workload for s in settings.schedules} == {"vae", "siamese", "transformer", "dcgan"}


def _pods(documents: list[dict]) -> list[dict]:
    pods = []
    for doc in documents:
        if doc["kind"] == "DaemonSet":
            pods.append(doc["spec"]["template"]["spec"])
        elif doc["kind"] == "CronJob":
            pods.append(doc["spec"]["jobTemplate"]["spec"]["template"]["spec"])
    return pods


@pytest.mark.parametrize("overlay", ["gpu", "cpu", "job"])
def test_every_container_runs_restricted_with_its_writable_paths_mounted(overlay: str) -> None:
    """Non-root, no privilege escalation, no capabilities, a read-only root; the one exception hands the
    hostPath data directory to uid 10001 (fsGroup does not apply to hostPath) with CHOWN alone."""
    tags = set()
    for pod in _pods(kustomize(KUBERNETES / "overlays" / overlay)):
        assert pod["securityContext"]["runAsNonRoot"] is True and pod["securityContext"]["runAsUser"] == 10001
        assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
        for container in [*pod.get("initContainers", []), *pod["containers"]]:
            context = container["securityContext"]
            assert context["allowPrivilegeEscalation"] is False and context["readOnlyRootFilesystem"] is True
            if container["name"] == "data-dir-owner":
                assert context["runAsUser"] == 0 and context["capabilities"] == {
                    "drop": ["ALL"],
                    "add": ["CHOWN"],
                }
                assert container["command"] == ["chown", "10001:10001", "/var/lib/benchd"]
            else:
                assert context["capabilities"] == {"drop": ["ALL"]} and "runAsUser" not in context
                mounts = {m["mountPath"] for m in container["volumeMounts"]}
                assert {"/var/lib/benchd", "/tmp"} <= mounts
                assert {"name": "HOME", "value": "/tmp"} in container["env"]
            tags.add(container["image"].rsplit(":", 1)[1])
    assert tags == {"0.1.0"}  # one place sets it: components/images


def test_each_node_fetches_the_datasets_it_lacks_at_start() -> None:
    pod, _benchd = _container(kustomize(KUBERNETES / "overlays" / "gpu"), "DaemonSet")
    names = [c["name"] for c in pod["initContainers"]]
    assert names == ["data-dir-owner", "datasets"]  # owned first, then filled
    fetching = pod["initContainers"][1]["args"][0]
    assert "benchd data fetch all --missing ||" in fetching  # offline, synthetic on first use


def test_the_kube_prometheus_stack_values_load_the_dashboards_benchd_ships() -> None:
    values = yaml.safe_load((KUBERNETES / "kube-prometheus-stack-values.yaml").read_text())
    sidecar = values["grafana"]["sidecar"]["dashboards"]
    documents = kustomize(KUBERNETES / "overlays" / "gpu")
    (dashboards,) = [d for d in documents if d["metadata"]["name"] == "benchd-grafana-dashboards"]
    assert sidecar["enabled"] is True and sidecar["searchNamespace"] == "ALL"
    assert dashboards["metadata"]["labels"][sidecar["label"]] == sidecar["labelValue"]


def test_one_command_renders_a_suite_cronjob_per_gpu_node(tmp_path: Path) -> None:
    """Job mode for a fleet: no CronJob copied by hand per node; start times spread and stable."""
    script = KUBERNETES / "overlays" / "job" / "per_node.py"
    nodes = [f"node/gpu-{n:02d}.rack-7.example.internal" for n in range(40)]
    run = [sys.executable, str(script), "--window", "2h"]
    rendered = subprocess.run(run, input="\n".join(nodes), capture_output=True, text=True, check=True).stdout
    documents = list(yaml.safe_load_all(rendered))
    assert len(documents) == 40 and {d["kind"] for d in documents} == {"CronJob"}
    _validate(documents, tmp_path)
    names = {d["metadata"]["name"] for d in documents}
    assert len(names) == 40 and max(map(len, names)) <= 52
    starts = []
    for doc in documents:
        pod = doc["spec"]["jobTemplate"]["spec"]["template"]["spec"]
        assert pod["nodeSelector"]["kubernetes.io/hostname"].startswith("gpu-")
        assert pod["containers"][0]["image"] == "registry.example.internal/benchd:0.1.0"
        minute, hour = map(int, doc["spec"]["schedule"].split()[:2])
        starts.append(hour * 60 + minute)
    assert all(3 * 60 + 30 <= start < 5 * 60 + 30 for start in starts)  # within the window after 03:30
    assert len(set(starts)) > 25  # spread, not all at once
    again = subprocess.run(run, input="\n".join(reversed(nodes)), capture_output=True, text=True, check=True)
    assert again.stdout == rendered  # the same node keeps its time
    empty = subprocess.run(run, input="", capture_output=True, text=True, check=False)
    assert empty.returncode == 2 and "no node names" in empty.stderr


def test_compose_stack_references_files_that_exist() -> None:
    compose_dir = ROOT / "deploy" / "compose"
    stack = yaml.safe_load((compose_dir / "compose.yaml").read_text())
    assert {"benchd", "benchd-cpu", "prometheus", "alertmanager", "grafana", "fetch-data"} <= set(
        stack["services"]
    )
    gpu = stack["services"]["benchd"]["deploy"]["resources"]["reservations"]["devices"][0]
    assert gpu["capabilities"] == ["gpu"]
    assert stack["services"]["fetch-data"]["profiles"] == ["fetch"]  # not part of every `up`
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
