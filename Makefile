# The commands people type. `make run` and `make test` set everything up first.
.PHONY: run test setup lint format bench clean

PY := .venv/bin/python

run: setup
	$(PY) -m mediad serve

test: setup
	$(PY) -m pytest

setup:
	@scripts/setup.sh

lint: setup
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .

format: setup
	$(PY) -m ruff format .
	$(PY) -m ruff check --fix .

bench: setup
	$(PY) -m tests.bench

clean:
	rm -rf .venv .pytest_cache .ruff_cache build dist *.egg-info
