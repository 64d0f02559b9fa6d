# The two entry points the README opens with. Everything installs into .venv;
# torch comes from pip's configured sources (a local wheel cache where there is one).
VENV ?= .venv
PYTHON ?= python3
BIN = $(VENV)/bin
SUDO = $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: install install-test serve run test test-fast test-image lint promtool chromium kubectl slurm \
	container-tools image image-base

# What serving needs (the package and its dependencies); the test tools come with install-test.
$(BIN)/benchd: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet -e .
	touch $@

$(VENV)/.test-tools: $(BIN)/benchd
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $@

install: $(BIN)/benchd

install-test: $(VENV)/.test-tools

serve: install
	$(BIN)/benchd serve

run: install
	$(BIN)/benchd run vae

# promtool (Debian's prometheus package) checks the metrics exposition in the tests.
promtool:
	@command -v promtool >/dev/null || { $(SUDO) apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq --no-install-recommends prometheus >/dev/null; }

# Chromium (Debian's package) renders `benchd report`'s page in the tests, driven by playwright.
chromium:
	@command -v chromium >/dev/null || { $(SUDO) apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq --no-install-recommends chromium >/dev/null; }

# kubectl (Debian's package) renders the Kubernetes overlays offline in the tests (`kubectl kustomize`).
kubectl:
	@command -v kubectl >/dev/null || { $(SUDO) apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq --no-install-recommends kubectl >/dev/null; }

# slurmctld and slurmd (Debian's packages) make the one-node cluster deploy/slurm's health check is tested on.
slurm:
	@command -v slurmctld >/dev/null && command -v slurmd >/dev/null || { $(SUDO) apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq --no-install-recommends slurmctld slurmd >/dev/null; }

# Images: docker where its engine answers, else podman (Debian's, with runc and mmdebstrap: `container-tools`).
ENGINE ?= $(shell docker info >/dev/null 2>&1 && echo docker || echo podman)
VARIANT ?= cuda
IMAGE ?= benchd:$(VARIANT)
# More --build-arg flags (base images, package indexes, torch versions; docs/deploy.md).
IMAGE_ARGS ?=
# The Debian base `image-base` makes where the registry's base images cannot be pulled.
LOCAL_BASE ?= localhost/benchd-base:bookworm
DEBIAN_SUITE ?= bookworm

container-tools:
	@command -v mmdebstrap >/dev/null && { docker info >/dev/null 2>&1 || command -v podman >/dev/null; } || { \
		$(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq \
		--no-install-recommends podman runc mmdebstrap >/dev/null; }

# podman keeps HEALTHCHECK only in Docker's image format.
image:
	$(ENGINE) build $(if $(filter podman,$(notdir $(ENGINE))),--format docker) -t $(IMAGE) \
		--build-arg VARIANT=$(VARIANT) --build-arg IMAGE=$(IMAGE) $(IMAGE_ARGS) .
	@$(ENGINE) image inspect --format 'image $(IMAGE): {{.Size}} bytes' $(IMAGE)

# Python, a compiler and the CA certificates on Debian, made once: the CPU variant's base
# (`make image VARIANT=cpu IMAGE_ARGS="--build-arg CPU_BASE=$(LOCAL_BASE)"`).
image-base: container-tools
	@$(ENGINE) image inspect $(LOCAL_BASE) >/dev/null 2>&1 || { \
		mmdebstrap --quiet --variant=apt --include=python3,python3-venv,gcc,g++,ca-certificates \
			$(DEBIAN_SUITE) - | $(ENGINE) import - $(LOCAL_BASE); }

# mypy sees the `benchd` package as it installs: daemon/ with workloads/ inside, as links.
TYPECHECK_TREE = $(VENV)/typecheck

lint: install-test
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	rm -rf $(TYPECHECK_TREE) && mkdir -p $(TYPECHECK_TREE)/benchd
	ln -s $(CURDIR)/daemon/* $(TYPECHECK_TREE)/benchd/ && ln -s $(CURDIR)/workloads $(TYPECHECK_TREE)/benchd/
	MYPYPATH=$(TYPECHECK_TREE) $(BIN)/mypy

# The slowest tests are listed at the end, to keep the whole run within its time.
test: lint promtool chromium kubectl slurm container-tools
	$(BIN)/python -m pytest --durations=25

# The CPU image built on a local Debian base and run as docs/deploy.md says (tests/test_image.py; part of
# `make test` too).
test-image: install-test container-tools
	$(BIN)/python -m pytest -m image

# The inner loop: everything but the tests marked slow (live daemons, Prometheus, whole runs).
test-fast: install-test
	$(BIN)/python -m pytest -m "not slow" -q
