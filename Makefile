# The two set-up commands of the README; both work on a fresh machine with only Python 3.11.
UV ?= $(shell command -v uv 2>/dev/null || echo .tools/bin/uv)
PYTEST_ARGS ?=

.PHONY: demo test test-fast setup lint

$(UV):
	python3 -m venv .tools && .tools/bin/pip install --quiet uv==0.13.8

setup: $(UV)
	$(UV) sync --frozen

demo: setup  ## run the main job: the baseline-daily flow on the NASA trace, on embedded defaults
	$(UV) run leadtime demo

test: setup  ## run every test, the slow integration ones included
	$(UV) run pytest -n 2 --dist loadfile $(PYTEST_ARGS)

test-fast: setup
	$(UV) run pytest -m "not slow" $(PYTEST_ARGS)

lint: setup
	$(UV) run ruff check .
	$(UV) run lint-imports
