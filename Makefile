# The two entry points the README opens with. Everything installs into .venv;
# torch comes from pip's configured sources (a local wheel cache where there is one).
VENV ?= .venv
PYTHON ?= python3
BIN = $(VENV)/bin

.PHONY: install run test lint

$(BIN)/benchd: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $@

install: $(BIN)/benchd

run: install
	$(BIN)/benchd run vae

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

test: lint
	$(BIN)/python -m pytest
