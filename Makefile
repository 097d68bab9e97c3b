# The commands people type. `make run` and `make test` set everything up first, the web
# page included (rebuilt only when its sources are newer than the build).
.PHONY: run test setup setup-test page lint format bench clean binary binary-onedir chaos

PY := .venv/bin/python
PAGE := mediad/static/index.html
PAGE_SOURCES := $(shell find ui/src ui/public -type f 2>/dev/null) \
	$(wildcard ui/*.json ui/*.ts ui/*.html ui/scripts/*) mediad/openapi.yaml

run: setup page
	$(PY) -m mediad serve

# The Python suite runs in TEST_WORKERS processes (pytest-xdist), each test file whole in
# one of them, so that a module's service starts once; `make test TEST_WORKERS=0` runs
# it in a single process.
TEST_WORKERS ?= 2
test: setup-test page
	cd ui && npm test
	$(PY) -m pytest -n $(TEST_WORKERS) --dist loadfile

setup:
	@scripts/setup.sh

setup-test:
	@scripts/setup.sh --test

# The page: `npm ci` when the lockfile changed, then the build into mediad/static/.
page: $(PAGE)

$(PAGE): ui/node_modules/.package-lock.json $(PAGE_SOURCES)
	cd ui && npm run build

ui/node_modules/.package-lock.json: ui/package-lock.json
	cd ui && npm ci --no-audit --no-fund

# The single binary (PyInstaller, packaging/mediad.spec): dist/mediad, one file with
# mediad, yt-dlp, the schema and the page inside. `binary-onedir`: dist/mediad-onedir/,
# a folder that starts faster. Both need the page built (the spec refuses otherwise).
PYINSTALLER := $(PY) -m PyInstaller --noconfirm --log-level WARN --distpath dist \
	--workpath build/pyinstaller packaging/mediad.spec

binary: setup page
	$(PYINSTALLER)

binary-onedir: setup page
	$(PYINSTALLER) -- --onedir

# ruff (lint and format check), then mypy over mediad/ ([tool.mypy] in pyproject.toml).
lint: setup
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .
	$(PY) -m mypy mediad

format: setup
	$(PY) -m ruff format .
	$(PY) -m ruff check --fix .

# `make bench` runs every benchmark; `make bench BENCH="ytdlp reads"` only the speed ones
# named (tests/bench/speed.py: ytdlp aria2 overhead reads idle ingest).
bench: setup page
ifeq ($(BENCH),)
	$(PY) -m tests.bench
	$(PY) -m tests.bench.speed
else
	$(PY) -m tests.bench.speed $(BENCH)
endif

# The long chaos run, by hand (the suite runs a short one): tests/integration/test_chaos.py
# with several seeds, about 300 jobs and 100 kills each; each seed's figures are printed
# and appended to build/chaos.jsonl. `make chaos CHAOS_SEEDS=7` replays one seed. Each seed
# has a timeout of its own; the suite's 40-minute budget for a whole run does not apply.
CHAOS_SEEDS ?= 1,2,3
chaos: setup
	mkdir -p build
	MEDIAD_CHAOS_SEEDS=$(CHAOS_SEEDS) MEDIAD_CHAOS_JOBS=300 MEDIAD_CHAOS_KILLS=100 \
		MEDIAD_CHAOS_REPORT=build/chaos.jsonl MEDIAD_TEST_SESSION_TIMEOUT_S=0 \
		$(PY) -m pytest tests/integration/test_chaos.py -s -q

clean:
	rm -rf .venv .pytest_cache .ruff_cache build dist *.egg-info mediad/static ui/node_modules
