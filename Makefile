# The release console. `make run` and `make test` are all a newcomer needs.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
# Install only from PyPI, with the lock's hashes, ignoring the machine's pip/uv config.
# Bytecode is compiled at install: where PYTHONDONTWRITEBYTECODE is set, every
# process (each manage.py command, each worker tool) would otherwise compile
# Django and its libraries from source, about 1 s a start.
UV_INSTALL := $(BIN)/uv pip sync --no-config --system-certs --index-url https://pypi.org/simple/ --require-hashes --compile-bytecode --python $(BIN)/python
PYTEST_ARGS ?=

.PHONY: install run test screenshots lint compose-check chaos bench-pipeline bench-web bench-logs bench-claims bench-throughput bench-watchers bench-click check-deploy lock clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --isolated --index-url https://pypi.org/simple/ "uv==0.13.9"

$(VENV)/.installed: requirements.lock | $(BIN)/python
	$(UV_INSTALL) requirements.lock
	touch $@

install: $(VENV)/.installed

# The console on its embedded default: SQLite, the filesystem broker, a worker,
# beat and a local sandbox index, all stopped by one Ctrl-C.
run: install
	$(BIN)/python manage.py run_embedded

# The whole suite against PostgreSQL and Redis on localhost, with ruff and mypy.
# Long benchmark and chaos runs are left to `make chaos`; the short forms run here.
# pytest's exit code 5 (no tests collected) is a failure here. A machine
# without a program the tests need (a browser, bubblewrap...) stops first,
# with the command that installs it (tests/support/tools.py).
test: install lint
	$(BIN)/python -m tests.support.tools
	$(BIN)/python -m pytest -m "not slow" --durations=30 $(PYTEST_ARGS); status=$$?; \
	if [ $$status -eq 5 ]; then echo "pytest collected no tests: failing"; exit 1; fi; exit $$status

# Refresh the screenshots in docs/ from the browser tests.
screenshots: install
	CONSOLE_SCREENSHOTS=$(CURDIR)/docs/screenshots $(BIN)/python -m pytest tests/test_console_browser.py tests/test_approvals_browser.py

lint: install compose-check
	$(BIN)/ruff check releases console tests bench
	$(BIN)/ruff format --check releases console tests bench
	$(BIN)/mypy releases console
	$(BIN)/lint-imports
	$(BIN)/python manage.py makemigrations --check --dry-run

# docker-compose.yml is valid with every .env.example variable filled in, and
# refuses to start while any secret is missing (.env.example as it is).
COMPOSE_CHECK_ENV := var/compose-check.env
compose-check:
	@command -v docker-compose >/dev/null || { echo "docker-compose is not installed (.ci/run installs it)"; exit 1; }
	@mkdir -p var
	sed -E 's/^([A-Z_0-9]+)=$$/\1=compose-check-placeholder/' .env.example > $(COMPOSE_CHECK_ENV)
	env -i PATH="$$PATH" docker-compose --env-file $(COMPOSE_CHECK_ENV) config -q
	@if env -i PATH="$$PATH" docker-compose --env-file .env.example config -q 2>/dev/null; then \
		echo "docker-compose.yml starts without the secrets of .env: it must refuse"; exit 1; \
	else echo "docker-compose.yml refuses to start without .env's secrets: good"; fi
	@rm -f $(COMPOSE_CHECK_ENV)

# The long forms of the tests marked slow: faults mid-release (SIGKILLed
# workers, Redis and PostgreSQL restarts, each on services of its own, with a
# summary table at the end), the sandbox's limits, make run stopped by TERM.
chaos: install
	$(BIN)/python -m pytest -m slow $(PYTEST_ARGS)

# Benchmarks: each prints a table and, last, one line with its figure.
# They use the bench database (BENCH_DATABASE_URL) and Redis db 5 (BENCH_REDIS_URL).
bench-pipeline: install
	$(BIN)/python -m bench.pipeline

bench-logs: install
	$(BIN)/python -m bench.logs

# The embedded default's queue: a job's wait for its claim, and an idle worker's CPU.
bench-claims: install
	$(BIN)/python -m bench.claims

# N releases of N projects at once on 2 workers, against N x one release / 2.
bench-throughput: install
	$(BIN)/python -m bench.throughput

# 100 open release pages polling while nothing changes: the server's CPU.
bench-watchers: install
	$(BIN)/python -m bench.watchers

# Click "Publish to ..." in Chromium until "Succeeded", beside uv publish + install by hand.
bench-click: install
	$(BIN)/python -m bench.click

bench-web: install
	command -v wrk >/dev/null || (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk)
	$(BIN)/python -m bench.web

check-deploy: install
	CONSOLE_MODE=production DATABASE_URL=postgres://localhost/console REDIS_URL=redis://localhost:6379/0 \
	SECRET_KEY=$$($(BIN)/python -c 'import secrets; print(secrets.token_urlsafe(50))') \
	CONSOLE_TOKEN_KEYS=$$($(BIN)/python -c 'from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())') \
	AUDIT_CHAIN_KEYS=$$($(BIN)/python -c 'import secrets; print(secrets.token_urlsafe(32))') \
	AUDIT_CHECKPOINT_SIGNING_KEY=$$($(BIN)/python -c 'import base64; from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey as K; print(base64.b64encode(K.generate().private_bytes_raw()).decode())') \
	ALLOWED_HOSTS=console.example.org $(BIN)/python manage.py check --deploy --fail-level WARNING

# requirements.lock: everything, for development and tests; requirements-runtime.lock:
# the same pins without the dev extras, for the production image (Dockerfile).
lock: | $(BIN)/python
	$(BIN)/uv pip compile --no-config --system-certs --index-url https://pypi.org/simple/ --python-version 3.11 \
		--extra dev --generate-hashes pyproject.toml -o requirements.lock
	$(BIN)/uv pip compile --no-config --system-certs --index-url https://pypi.org/simple/ --python-version 3.11 \
		--generate-hashes pyproject.toml --constraints requirements.lock -o requirements-runtime.lock

clean:
	rm -rf $(VENV) var staticfiles
