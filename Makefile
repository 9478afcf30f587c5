# The two commands of the README: `make run` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP_RUN := $(VENV)/.installed-run
STAMP_TEST := $(VENV)/.installed-test
SUPERVISORCTL := $(BIN)/supervisorctl -c supervisord.conf

.PHONY: run test typecheck stop status logs bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(STAMP_RUN): setup.cfg pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e .
	touch $@

$(STAMP_TEST): setup.cfg pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e '.[test,bench]'
	touch $@ $(STAMP_RUN)

run: $(STAMP_RUN)
	@mkdir -p run/logs
	@if $(SUPERVISORCTL) pid >/dev/null 2>&1; then \
		echo "supervisord is already running; restarting every program"; $(SUPERVISORCTL) restart all; \
	else $(BIN)/supervisord -c supervisord.conf; fi
	@$(BIN)/python -m examples.wait_ready --config seawall.toml
	@echo
	@echo "seawall is running under supervisord."
	@echo "  endpoint:   curl 'http://127.0.0.1:8080/example/home?user=7'"
	@echo "  Netflix API demo (18 simulated backends, one pool each):"
	@echo "              curl 'http://127.0.0.1:8080/ps3/home?user=7'"
	@echo "              curl 'http://127.0.0.1:8080/android/home?user=7'"
	@echo "              curl 'http://127.0.0.1:8080/tv/home?user=7'"
	@echo "              break one: $(BIN)/seawall --config seawall.toml chaos errors recommendations 100"
	@echo "  dashboard:  http://127.0.0.1:8080/dashboard   (Hystrix stream: /hystrix.stream, Prometheus: /metrics)"
	@echo "  status:     $(BIN)/seawall --config seawall.toml status"
	@echo "  processes:  $(SUPERVISORCTL) status"
	@echo "  logs:       make logs   (or $(BIN)/seawall --config seawall.toml logs --follow --event breaker_opened)"
	@echo "  stop:       make stop"

# supervisorctl's shutdown returns at once; the programs drain first (up to their
# stopwaitsecs), so wait for supervisord's own pid to be gone: `make stop && make run` works.
stop:
	@pid=$$(cat run/supervisord.pid 2>/dev/null); \
	if $(SUPERVISORCTL) shutdown >/dev/null 2>&1; then \
		echo "supervisord (pid $$pid) is stopping every program..."; \
		waited=0; while [ -n "$$pid" ] && kill -0 "$$pid" 2>/dev/null && [ $$waited -lt 600 ]; do \
			sleep 0.1; waited=$$((waited + 1)); done; \
		if [ -n "$$pid" ] && kill -0 "$$pid" 2>/dev/null; then echo "supervisord (pid $$pid) is still stopping after 60 s"; exit 1; fi; \
		echo "stopped"; \
	else echo "supervisord is not running"; fi

status: $(STAMP_RUN)
	@$(BIN)/seawall --config seawall.toml status

logs: $(STAMP_RUN)
	@$(BIN)/seawall --config seawall.toml logs --follow -n 20 $(LOGS_ARGS)

test: $(STAMP_TEST)
	$(BIN)/mypy   # the type hints must hold (the [mypy] section of setup.cfg)
	-@scripts/ensure-test-deps   # chromium, network namespaces; a test needing a missing one fails and says why
	$(BIN)/python -m pytest

typecheck: $(STAMP_TEST)
	$(BIN)/mypy

bench: $(STAMP_TEST)
	scripts/ensure-redis   # the Celery peer's broker; the suite starts and stops its own redis-server
	$(BIN)/python bench/suite.py $(BENCH_ARGS)

clean:
	rm -rf $(VENV) run *.egg-info
