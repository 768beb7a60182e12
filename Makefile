# pyoci's developer entry points.  Run `make help` for the list.
#
# The virtual environment is always made from Debian's /usr/bin/python3 (not a
# pyenv or other per-user interpreter), so that .venv/bin/pyoci works for every
# user who can read it.

SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help
# Several targets run pip on this checkout, which builds in ./build: never at once.
.NOTPARALLEL:

SYSTEM_PYTHON := /usr/bin/python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip --disable-pip-version-check
# Marks a `make dev` install (editable, with test tools) that is newer than
# the build inputs; `make test` and `make lint` reinstall when it is stale.
DEV_STAMP := $(VENV)/.pyoci-dev
BUILD_INPUTS := pyproject.toml setup.py $(wildcard csrc/*.c csrc/*.h csrc/*.py)

# The unprivileged half of `make demo` runs as this user, from a copy of
# pyoci installed under DEMO_PREFIX (world-readable, so it works even when
# this checkout lives in a directory other users cannot enter, like /root).
DEMO_USER := pyoci-demo
DEMO_PREFIX := /opt/pyoci

APT_PACKAGES := make python3-venv python3-dev libffi-dev gcc busybox-static runc uidmap hyperfine \
	podman conmon crun libseccomp-dev libcap-dev bats strace fuse3 bindfs \
	containerd docker.io rootlesskit clang-format buildah

.PHONY: help deps venv install dev test lint format-c bench load demo demo-prefix clean distclean podman-conf man fuzz

help:
	@echo "make demo       set everything up (as root) and run a busybox container as root and as $(DEMO_USER)"
	@echo "make test       run the test suite ($(PY) -m pytest tests -q)"
	@echo "make crash      SIGKILL pyoci (then runc) at random points, CRASH_N=300 trials (CRASH_SEED replays)"
	@echo "make deps       apt-get install the system packages (root; skipped when all are installed)"
	@echo "make install    $(VENV) from $(SYSTEM_PYTHON) + pip install . (non-editable): $(VENV)/bin/pyoci"
	@echo "make dev        pip install -e '.[test]' into $(VENV) (editable, with pytest, ruff, mypy)"
	@echo "make lint       ruff check + mypy on pyoci/, strict C warnings and clang-format check on csrc/"
	@echo "make format-c   reformat csrc/ with clang-format (.clang-format)"
	@echo "make fuzz       fuzz config.json as root and rootless (FUZZ_N=2000 cases each, FUZZ_SEED=, FUZZ_CASE=)"
	@echo "make bench      time pyoci against runc (BENCH_N=30 runs each, BENCH_JSON=FILE for JSON)"
	@echo "make load       pyoci against runc under concurrent load (LOAD_REPS=5 LOAD_N=100 LOAD_J=20 LOAD_T=50;"
	@echo "                LOAD_USER=name: rootless, as that user; LOAD_ARGS=--setsid ...)"
	@echo "make clean      remove build outputs and caches (keeps $(VENV)); make distclean removes $(VENV) too"
	@echo "make man        regenerate docs/man/*.1 from the CLI's flag tables (a unit test checks they match)"
	@echo "make podman-conf register .venv/bin/pyoci with Podman (/etc/containers/containers.conf.d/pyoci.conf)"

# System packages.  Does nothing when they are all installed, so that `make
# test` and friends also work offline and for users other than root.
deps:
	@missing=""; \
	for p in $(APT_PACKAGES); do \
	  dpkg-query -W -f='$${db:Status-Status}' "$$p" 2>/dev/null | grep -qx installed || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" != 0 ]; then echo "missing Debian packages:$$missing (run 'make deps' as root)" >&2; exit 1; fi; \
	  echo "apt-get install$$missing"; \
	  export DEBIAN_FRONTEND=noninteractive; \
	  apt-get update -q; \
	  apt-get install -y -q $(APT_PACKAGES) </dev/null; \
	fi

# (Re)create $(VENV) unless it already runs $(SYSTEM_PYTHON).
venv: deps
	@if [ "$$(readlink -f $(PY) 2>/dev/null)" != "$$(readlink -f $(SYSTEM_PYTHON))" ]; then \
	  echo "creating $(VENV) from $(SYSTEM_PYTHON)"; \
	  rm -rf $(VENV); \
	  $(SYSTEM_PYTHON) -m venv $(VENV); \
	fi

# Non-editable: pip builds a wheel (cffi compiles csrc/ into pyoci.native._helper)
# and installs it; $(VENV)/bin/pyoci is the runtime.
install: venv
	rm -f $(DEV_STAMP)
	$(PIP) install .
	$(PY) -m pyoci.launcher $(VENV)/bin/pyoci

$(DEV_STAMP): $(BUILD_INPUTS) | venv
	$(PIP) install -e '.[test]'
	$(PY) -m pyoci.launcher $(VENV)/bin/pyoci
	touch $@

dev: venv
	rm -f $(DEV_STAMP)
	@$(MAKE) --no-print-directory $(DEV_STAMP)

test: $(DEV_STAMP)
	$(PY) -m pytest tests -q

# Crash injection (tests/integration/test_crash.py): SIGKILL at random points
# of create/start/exec/delete, CRASH_N trials (the seed is printed: CRASH_SEED
# replays), then the same trials against runc for comparison.
CRASH_N ?= 300
.PHONY: crash
crash: $(DEV_STAMP)
	@test "$$(id -u)" = 0 || { echo "make crash must run as root" >&2; exit 1; }
	seed=$${CRASH_SEED:-$$(od -An -N4 -tu4 /dev/urandom | tr -d ' ')}; rc=0; \
	CRASH_N=$(CRASH_N) CRASH_SEED=$$seed $(PY) -m pytest tests/integration/test_crash.py -q -s \
	  -p no:cacheprovider || rc=$$?; \
	if command -v runc >/dev/null; then \
	  CRASH_N=$(CRASH_N) CRASH_SEED=$$seed CRASH_RUNTIME=runc $(PY) -m pytest tests/integration/test_crash.py -q -s \
	    -p no:cacheprovider 2>&1 | grep -E '^crash injection' || true; \
	fi; \
	exit $$rc

# The C side: the build's -Wall -Wextra -Werror, and stricter warnings the
# build leaves out (they would also judge the code cffi generates): a
# possibly truncated snprintf, shadowed names, variable-length arrays.
C_LINT_FLAGS := -O2 -std=gnu11 -Wall -Wextra -Werror -Wformat=2 -Wformat-truncation=2 \
	-Wformat-overflow=2 -Wstringop-truncation -Wshadow -Wvla -Icsrc

lint: $(DEV_STAMP)
	$(VENV)/bin/ruff check pyoci
	$(VENV)/bin/mypy pyoci
	@for f in csrc/*.c; do echo "cc -c $$f"; $${CC:-cc} $(C_LINT_FLAGS) -c -o /dev/null "$$f"; done
	@# The format of csrc/ (.clang-format; Debian 12's clang-format 14). `make format-c` fixes it.
	clang-format --dry-run --Werror csrc/*.c csrc/*.h

# csrc/ in the style of .clang-format.
format-c:
	clang-format -i csrc/*.c csrc/*.h

# The config fuzz test of `make test` (tests/integration/test_config_fuzz.py),
# longer.  It prints its seed; FUZZ_SEED=S FUZZ_CASE=N replays one case.
FUZZ_N ?= 2000
FUZZ_SEED ?=
FUZZ_CASE ?=
.PHONY: fuzz
fuzz: $(DEV_STAMP)
	FUZZ_N=$(FUZZ_N) FUZZ_SEED=$(FUZZ_SEED) FUZZ_CASE=$(FUZZ_CASE) \
	  $(PY) -m pytest tests/integration/test_config_fuzz.py -q -s -p no:cacheprovider

bench: install
	$(PY) -m tools.bench

# Concurrent load (tools/load.py): N lifecycles J at once, and teardown of T
# running containers, for pyoci and runc alternately; prints both runtimes'
# medians side by side.  Uses the installed $(VENV) as it is (dev or not).
# LOAD_USER runs it as that user: rootless bundles, both runtimes rootless.
LOAD_USER ?=
LOAD_ARGS ?=
load: $(DEV_STAMP)
	@if [ -n "$(LOAD_USER)" ]; then \
	  runuser -u $(LOAD_USER) -- env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin $(if $(LOAD_REPS),LOAD_REPS=$(LOAD_REPS)) \
	    $(if $(LOAD_N),LOAD_N=$(LOAD_N)) $(if $(LOAD_J),LOAD_J=$(LOAD_J)) $(if $(LOAD_T),LOAD_T=$(LOAD_T)) \
	    $(abspath $(PY)) $(abspath tools/load.py) --pyoci $(abspath $(VENV))/bin/pyoci $(LOAD_ARGS); \
	else \
	  $(PY) tools/load.py $(LOAD_ARGS); \
	fi

# A world-readable copy of pyoci for the demo's unprivileged user.
demo-prefix: deps
	@test "$$(id -u)" = 0 || { echo "make demo must run as root" >&2; exit 1; }
	umask 022; \
	if [ "$$(readlink -f $(DEMO_PREFIX)/bin/python 2>/dev/null)" != "$$(readlink -f $(SYSTEM_PYTHON))" ]; then \
	  rm -rf $(DEMO_PREFIX); \
	  $(SYSTEM_PYTHON) -m venv $(DEMO_PREFIX); \
	fi; \
	$(DEMO_PREFIX)/bin/python -m pip --disable-pip-version-check install -q .
	$(DEMO_PREFIX)/bin/python -m pyoci.launcher $(DEMO_PREFIX)/bin/pyoci

demo: install demo-prefix
	$(PY) -m tools.demo --pyoci $(VENV)/bin/pyoci \
	  --user $(DEMO_USER) --user-python $(DEMO_PREFIX)/bin/python --user-pyoci $(DEMO_PREFIX)/bin/pyoci

clean:
	rm -rf build dist *.egg-info .pytest_cache .mypy_cache .ruff_cache
	rm -f pyoci/native/_helper.c pyoci/native/*.so pyoci/native/*.o
	find pyoci tests -name __pycache__ -type d -prune -exec rm -rf {} +
	rm -f $(DEV_STAMP)

distclean: clean
	rm -rf $(VENV)

# Register pyoci with Podman: `podman --runtime pyoci` by name, with JSON
# errors (Podman passes --log-format=json only to runtimes listed here).
PODMAN_CONF_D := /etc/containers/containers.conf.d
podman-conf:
	@test "$$(id -u)" = 0 || { echo "make podman-conf must run as root" >&2; exit 1; }
	mkdir -p $(PODMAN_CONF_D)
	printf '%s\n' '# written by pyoci'"'"'s `make podman-conf`' '[engine]' \
	  'runtime_supports_json = ["crun", "runc", "kata", "runsc", "krun", "pyoci"]' \
	  '[engine.runtimes]' 'pyoci = ["$(abspath $(VENV))/bin/pyoci"]' > $(PODMAN_CONF_D)/pyoci.conf
	@echo "wrote $(PODMAN_CONF_D)/pyoci.conf: podman --runtime pyoci run ..."

# The man pages are generated from the CLI's own tables (pyoci/cli/manpages.py);
# tests/unit/test_manpages.py fails when the committed ones differ.
man: $(DEV_STAMP)
	$(PY) -m pyoci.cli.manpages docs/man
