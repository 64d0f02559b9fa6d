"""The CPU image, built by `make image` and run as docs/deploy.md says.

Nothing comes from a container registry: the base is Debian made by
mmdebstrap (`make image-base`), and pip inside the build reads a package
index this test serves on loopback from the wheels pip's configured sources
hold (the torch pair the host runs, or its CPU-only wheels where those are
offered). The container runs as the image's non-root user with a token, a
data volume and a published port that is not the default one (so the health
check must follow BENCHD_PORT), runs a VAE on `benchd trigger --wait`, is
scraped from the host, leaves nothing outside its volume, and stops within
its grace period.
"""

from __future__ import annotations

import functools
import http.server
import json
import os
import re
import secrets
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from importlib import metadata
from pathlib import Path

import httpx
import pytest

from .daemon_process import free_port, wait_for

pytestmark = [pytest.mark.slow, pytest.mark.image]

ROOT = Path(__file__).resolve().parent.parent


def _docker_answers() -> bool:
    """A docker client with no engine behind it is no engine (as `make image` decides too)."""
    if shutil.which("docker") is None:
        return False
    return subprocess.run(["docker", "info"], capture_output=True, check=False).returncode == 0


ENGINE = "docker" if _docker_answers() else "podman"
IMAGE = "localhost/benchd:cpu-test"
STOP_GRACE_SECONDS = 30
# What the engine itself mounts into every container (and so lists as changed): not the image's writes.
ENGINE_MOUNTS = {"/etc", "/etc/hosts", "/etc/hostname", "/etc/resolv.conf", "/run", "/run/.containerenv"}
# The wheel index's port when free: the same build arguments each time let the engine reuse its cached
# torch layer on a machine that built the image before (a fresh machine builds it whole).
INDEX_PORT = 39655
# cgroup v1 hosts: runc (crun needs v2) and no default ulimits, for this test's podman only.
PODMAN_CONF = """[containers]
default_ulimits = []

[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
"""


def engine(*args: str, env: dict[str, str], check: bool = True, timeout: float = 300) -> str:
    command = [ENGINE, *args]
    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=timeout, check=False)
    if check and result.returncode != 0:
        raise AssertionError(f"{ENGINE} {' '.join(args)} exited {result.returncode}: {result.stderr[-2000:]}")
    return result.stdout


def _release(name: str) -> str:
    return metadata.version(name).split("+")[0]


def torch_pair(download: Path) -> tuple[str, str, bool]:
    """The torch and torchvision versions to build with, and whether they are CPU-only wheels: the host's
    versions as `+cpu` builds where pip's sources offer both, else the host's own builds."""
    cpu = (f"torch=={_release('torch')}+cpu", f"torchvision=={_release('torchvision')}+cpu")
    offered = subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--no-deps", "-d", str(download),
                              *cpu], capture_output=True, text=True, check=False)  # fmt: skip
    if offered.returncode == 0:
        return cpu[0].split("==")[1], cpu[1].split("==")[1], True
    return metadata.version("torch"), metadata.version("torchvision"), False


def simple_index(wheels: Path) -> None:
    """A PEP 503 index of the folder's wheels under wheels/simple."""
    by_project: dict[str, list[str]] = {}
    for wheel in sorted(wheels.glob("*.whl")):
        project = re.sub(r"[-_.]+", "-", wheel.name.split("-")[0]).lower()
        by_project.setdefault(project, []).append(wheel.name)
    for project, files in by_project.items():
        page = wheels / "simple" / project
        page.mkdir(parents=True)
        links = "".join(f'<a href="../../{name}">{name}</a>\n' for name in files)
        (page / "index.html").write_text(f"<!DOCTYPE html>\n<html><body>\n{links}</body></html>\n")


@pytest.fixture(scope="module")
def engine_env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    if shutil.which(ENGINE) is None or shutil.which("mmdebstrap") is None:
        pytest.skip("no container engine or no mmdebstrap: `make container-tools` installs both")
    conf = tmp_path_factory.mktemp("engine") / "containers.conf"
    conf.write_text(PODMAN_CONF)
    return {**os.environ, "CONTAINERS_CONF": str(conf)}


@pytest.fixture(scope="module")
def wheel_index(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str, str, bool]]:
    """(index URL, torch version, torchvision version, CPU-only) served on loopback while the module runs."""
    wheels = tmp_path_factory.mktemp("wheels")
    torch_version, vision_version, cpu_only = torch_pair(wheels)
    printed = subprocess.run([sys.executable, "deploy/print_requirements.py", "pyproject.toml"], cwd=ROOT,
                             capture_output=True, text=True, check=True)  # fmt: skip
    requirements = printed.stdout.split("\n")
    subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--only-binary=:all:", "-d", str(wheels),
                    f"torch=={torch_version}", f"torchvision=={vision_version}", *filter(None, requirements)],
                   check=True, capture_output=True)  # fmt: skip
    simple_index(wheels)
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(wheels))
    handler.log_message = lambda *args: None  # type: ignore[attr-defined]
    try:
        server = http.server.ThreadingHTTPServer(("127.0.0.1", INDEX_PORT), handler)
    except OSError:  # taken: any free port, and a build without the cached layers
        server = http.server.ThreadingHTTPServer(("127.0.0.1", free_port()), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}/simple", torch_version, vision_version, cpu_only
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
        shutil.rmtree(wheels)  # gigabytes with CUDA wheels


@pytest.fixture(scope="module")
def image(engine_env: dict[str, str], wheel_index: tuple[str, str, str, bool]) -> str:
    index, torch_version, vision_version, _ = wheel_index
    make = ["make", "--no-print-directory", f"ENGINE={ENGINE}"]
    subprocess.run([*make, "image-base"], cwd=ROOT, env=engine_env, check=True, capture_output=True)
    # Layers of earlier builds that no tagged image uses: gigabytes each with CUDA wheels. The last test
    # image stays, and with it the cache a build with the same arguments reuses.
    engine("image", "prune", "--force", env=engine_env)
    arguments = " ".join([
        "--network host --build-arg CPU_BASE=localhost/benchd-base:bookworm",
        f"--build-arg TORCH_INDEX={index} --build-arg PIP_INDEX_URL={index}",
        f"--build-arg TORCH_VERSION={torch_version} --build-arg TORCHVISION_VERSION={vision_version}",
    ])  # fmt: skip
    built = subprocess.run([*make, "image", "VARIANT=cpu", f"IMAGE={IMAGE}", f"IMAGE_ARGS={arguments}"],
                           cwd=ROOT, env=engine_env, capture_output=True, text=True, timeout=1800,
                           check=False)  # fmt: skip
    assert built.returncode == 0, built.stderr[-3000:]
    return IMAGE


@pytest.fixture
def container(image: str, engine_env: dict[str, str]) -> Iterator[tuple[str, int, str]]:
    """(name, host port, token) of the image started as docs/deploy.md says, on a port of the test's."""
    name, token, port = f"benchd-test-{secrets.token_hex(4)}", secrets.token_hex(24), free_port()
    volume = engine("volume", "create", f"{name}-data", env=engine_env).strip()
    engine("run", "-d", "--name", name, "--read-only", "--tmpfs", "/tmp", "-e", f"BENCHD_TOKEN={token}",
           "-e", f"BENCHD_PORT={port}", "-p", f"127.0.0.1:{port}:{port}", "-v", f"{volume}:/var/lib/benchd",
           image, env=engine_env)  # fmt: skip
    try:
        yield name, port, token
    finally:
        engine("rm", "-f", "-t", "0", name, env=engine_env, check=False)
        engine("volume", "rm", "-f", volume, env=engine_env, check=False)


def healthy(name: str, env: dict[str, str]) -> bool:
    """The image's HEALTHCHECK: podman runs it on demand; docker reports its own schedule's last result."""
    if ENGINE == "podman":
        ran = subprocess.run([ENGINE, "healthcheck", "run", name], env=env, capture_output=True, check=False)
        return ran.returncode == 0
    return engine("inspect", "--format", "{{.State.Health.Status}}", name, env=env).strip() == "healthy"


def test_the_cpu_image_serves_runs_and_stops_as_documented(
    container: tuple[str, int, str], engine_env: dict[str, str], wheel_index: tuple[str, str, str, bool],
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    name, port, token = container
    wait_for(lambda: healthy(name, engine_env), 180, "the image's health check on BENCHD_PORT", interval=1)
    assert engine("exec", name, "id", "-u", env=engine_env).strip() == "10001"

    trigger = ["benchd", "trigger", "vae", "-p", "bs128", "--fraction", "0.05", "--epochs", "1", "--wait"]
    triggered = subprocess.run([ENGINE, "exec", name, *trigger], env=engine_env, capture_output=True,
                               text=True, timeout=600, check=False)  # fmt: skip
    assert triggered.returncode == 0, triggered.stdout + triggered.stderr

    headers = {"Authorization": f"Bearer {token}"}
    metrics = httpx.get(f"http://127.0.0.1:{port}/metrics", headers=headers, timeout=30)
    assert metrics.status_code == 200
    assert re.search(r'^benchd_last_epoch_duration_seconds\{[^}]*workload="vae"', metrics.text, re.M)

    changed = set(engine("diff", name, env=engine_env).split()) - {"C", "A", "D"}
    outside = sorted(p for p in changed - ENGINE_MOUNTS if not p.startswith("/var/lib/benchd/"))
    assert outside == [], f"written outside the data volume: {outside}"

    began = time.monotonic()
    engine("stop", "-t", str(STOP_GRACE_SECONDS), name, env=engine_env, timeout=STOP_GRACE_SECONDS + 30)
    stopped_in = time.monotonic() - began
    exit_code = engine("inspect", "--format", "{{.State.ExitCode}}", name, env=engine_env).strip()
    assert stopped_in < STOP_GRACE_SECONDS and exit_code == "0", (stopped_in, exit_code)

    size = int(engine("image", "inspect", "--format", "{{.Size}}", IMAGE, env=engine_env).strip())
    packages = json.loads(engine("run", "--rm", "--entrypoint", "pip", IMAGE, "list", "--format", "json",
                                 env=engine_env))  # fmt: skip
    cuda = sorted(p["name"] for p in packages if p["name"].lower().startswith(("nvidia-", "cuda-")))
    cpu_only = wheel_index[3]
    assert cuda == [] if cpu_only else cuda, cuda
    carries = (
        "CPU-only wheels, no CUDA libraries"
        if cpu_only
        else f"no CPU-only torch/torchvision pair offered, so it carries {len(cuda)} CUDA packages"
    )
    with capsys.disabled():
        print(f"\n{IMAGE}: {size / 1e9:.2f} GB, torch {wheel_index[1]}; {carries}")
