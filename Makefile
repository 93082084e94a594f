# Frontdesk: `make demo` runs the product on simulated lines; `make test` runs the tests.
# Both set up everything they need: Debian packages (as root), a .venv, the Python packages.

PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: demo test bench soak lint format system-deps system-deps-test venv clean

demo: system-deps venv
	$(VENV)/bin/frontdesk demo

# Most tests wait on real time (calls, faxes, pages), not the CPU: three processes, each
# running whole test files, take about a third of the time even on two cores.
TEST_WORKERS ?= 3

test: system-deps-test venv
	$(PY) -m ruff check .
	$(PY) -m mypy
	@$(PY) -m pytest -n $(TEST_WORKERS) --dist loadfile; rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "make test: pytest collected no tests: failing"; exit 1; fi; \
	exit $$rc

# Every benchmark in bench/, then one table: figure, value, target, met. The soak runs in
# its quick mode here (about 2 minutes); `make soak` runs the full day.
bench: venv
	@$(PY) bench/run_all.py

# A compressed office day with faults through a real daemon, then the ledger (docs/performance.md).
# `make soak CALLS=1000 SMS=1000 FAXES=50 MINUTES=10`; SOAK_QUICK=1 for about 2 minutes.
soak: venv
	@CALLS="$(CALLS)" SMS="$(SMS)" FAXES="$(FAXES)" MINUTES="$(MINUTES)" $(PY) bench/soak.py

lint: venv
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .
	$(PY) -m mypy

format: venv
	$(PY) -m ruff format .
	$(PY) -m ruff check --fix .

system-deps:
	@scripts/system-deps.sh run

system-deps-test:
	@scripts/system-deps.sh test

venv: $(STAMP)

# pyalsaaudio compiles against ALSA's headers: installed when they are there.
$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	@extras=test; \
	if [ -f /usr/include/alsa/asoundlib.h ]; then extras=test,audio; \
	else echo "venv: ALSA headers missing (libasound2-dev): GSM sound-card audio left out"; fi; \
	$(PY) -m pip install -q -e ".[$$extras]"
	@touch $(STAMP)

# Install on this machine (Raspberry Pi OS / Debian bookworm), as root: image-build/README.md.
.PHONY: install uninstall install-test
install:
	@image-build/install.sh

# `sudo make uninstall PURGE=1` also removes the data, the config and the user.
uninstall:
	@image-build/uninstall.sh $(if $(PURGE),--purge)

# Slow (minutes, needs root, debootstrap, systemd-container and the network): not part of
# `make test`; run it before every release (image-build/README.md).
install-test:
	@image-build/install-test.sh

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .ruff_cache .mypy_cache test-artifacts
