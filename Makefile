# The two set-up commands of the README; both work on a fresh machine with only Python 3.11.
UV ?= $(shell command -v uv 2>/dev/null || echo .tools/bin/uv)
PYTEST_ARGS ?=

.PHONY: demo test test-fast setup lint

$(UV):
	python3 -m venv .tools && .tools/bin/pip install --quiet uv==0.13.8

# bytecode compiled once at install: where PYTHONDONTWRITEBYTECODE is set, every command would
# otherwise compile its libraries again at each start (about 2.5 s for Tier 1's and MLflow's)
setup: $(UV)
	$(UV) sync --frozen --compile-bytecode

# the product end to end in under 4 minutes on 2 cores: the Tier 1 champion, the trace's last week
# replayed against the HPA and predictive peers, the table, the HTML report, the next steps
demo: setup  ## baseline-daily, the replay, the report (leadtime_cli/demo.py)
	$(UV) run leadtime demo

test: setup  ## run the tests this machine can run (servers absent: those tests skip, saying why)
	$(UV) run pytest -n 2 --dist loadfile $(PYTEST_ARGS)

test-fast: setup
	$(UV) run pytest -m "not slow" $(PYTEST_ARGS)

lint: setup
	$(UV) run ruff check .
	$(UV) run lint-imports
