# tian: two commands do everything on a fresh machine.
#   make run   set up, train and evaluate on the demo data, find duplicates and topic coverage
#   make test  set up, lint, type-check and run the test suite
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
TIAN := $(VENV)/bin/tian
STAMP := $(VENV)/.installed
DEMO := data/demo
RUN := runs/demo

.PHONY: run test lint venv clean

venv: $(STAMP)

# torch first and pinned: the local CPU wheel; a bare `torch` would pull a multi-GB CUDA build.
$(STAMP): pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet torch==2.13.0
	$(PY) -m pip install --quiet -e '.[train,service,dev]'
	touch $(STAMP)

run: $(STAMP)
	$(TIAN) backbone build
	$(TIAN) train --kind baseline --data $(DEMO)/proposals.csv --years 2022 2023 --out $(RUN)/baseline
	$(TIAN) train --data $(DEMO)/proposals.csv --years 2022 2023 --units data/units.csv \
	    --out $(RUN)/auto
	$(TIAN) evaluate --model $(RUN)/baseline --data $(DEMO)/proposals.csv --years 2024 \
	    --report $(RUN)/baseline_eval/report.json --format table
	$(TIAN) evaluate --model $(RUN)/auto --data $(DEMO)/proposals.csv --years 2024 \
	    --report $(RUN)/auto_eval/report.json --format table
	$(TIAN) predict --model $(RUN)/auto --data $(DEMO)/proposals.csv --out $(RUN)/predictions.jsonl
	$(TIAN) dedup --data $(DEMO)/proposals.csv --out $(RUN)/duplicates.csv --groups $(RUN)/groups.csv \
	    --evidence $(RUN)/evidence.jsonl
	$(TIAN) topics --topics $(DEMO)/topics_2024.csv --data $(DEMO)/proposals.csv --years 2024 \
	    --out $(RUN)/topics.jsonl --coverage $(RUN)/topic_coverage.json
	$(TIAN) serve --model $(RUN)/auto --import $(DEMO)/proposals.csv \
	    --topics $(DEMO)/topics_2024.csv --topics-year 2024 --demo-admin

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy model service
	$(VENV)/bin/lint-imports  # layering contracts: [tool.importlinter] in pyproject.toml

test: lint
	HF_HUB_OFFLINE=1 $(VENV)/bin/pytest -q --durations=10

clean:
	rm -rf $(RUN) .pytest_cache .mypy_cache .ruff_cache
