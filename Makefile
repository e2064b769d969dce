# fleetd developer entry points. Everything installs what it needs first (`make deps`):
#   make demo    a 3-host local cluster (real systemd hosts + etcd), hello.service started on it
#   make test    the whole suite, real-cluster tests included (needs root; CI runs this)
#   make down    tear the local cluster down
#   make lint    ruff + import-linter
#   make bench   benchmarks; figures printed and recorded in docs/benchmarks.md
#   make nemesis fault injection on a 5-host local cluster (NEMESIS_RUNS=N runs per scenario)
#   make scale   50 real hosts of the local cluster: 2,000 units, 5 hosts lost (minutes)
#   make vagrant-box   the Vagrant box fleetd/debian12, built from Debian's packages (once)
#   make vagrant-test  3 KVM VMs with vagrant-libvirt, checked as an operator would, destroyed
SHELL := /bin/bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := help

PYTHON ?= $(shell command -v python3.11 2>/dev/null || command -v python3)
VENV := .venv
LC := vagrant/local-cluster
FLEETCTL := $(VENV)/bin/fleetctl

.PHONY: help deps demo test down lint bench nemesis scale vagrant-box vagrant-test

help:
	@sed -n '2,10p' Makefile | sed 's/^# *//'

# apt packages (only the missing ones, one `apt-get update` first), then the dev venv
# (rebuilt when pyproject.toml changes), then .hostlib: the runtime dependencies for the
# hosts' python3 (rebuilt when the dependency list in pyproject.toml changes).
deps: $(VENV)/.installed
	@$(LC) deps-hostlib

$(VENV)/.installed: pyproject.toml
	@$(LC) deps-apt
	@test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	@echo "make: installing fleetd and its dev dependencies into $(VENV)" >&2
	@$(VENV)/bin/pip install -q --disable-pip-version-check -e '.[dev]' 2>&1 \
	  | { grep -v 'is ignored: it is neither a file nor a directory' || true; } >&2
	@touch $@

demo: deps
	@$(LC) up 3
	@eval "$$($(LC) env)"; \
	  echo "+ fleetctl start units/hello.service"; $(FLEETCTL) start units/hello.service; \
	  echo "+ fleetctl list-units"; $(FLEETCTL) list-units
	@echo
	@echo "The local cluster is up (hosts h1-h3, etcd on 10.213.1.1:12379). To use it:"
	@echo "  eval \"\$$($(LC) env)\"          # sets FLEETCTL_ENDPOINT"
	@echo "  $(FLEETCTL) list-machines"
	@echo "  $(FLEETCTL) list-units"
	@echo "  $(LC) status | exec h1 CMD | logs h1 | stop-host h2 | cut h3 | ..."
	@echo "Stop it with: make down"

test: deps
	$(VENV)/bin/pytest -q tests

down:
	@$(LC) down

lint: $(VENV)/.installed
	$(VENV)/bin/ruff check .
	@if [ -f .importlinter ] || grep -q '^\[tool.importlinter' pyproject.toml; then \
	  echo "$(VENV)/bin/lint-imports"; $(VENV)/bin/lint-imports; \
	else echo "make: no import-linter contracts configured; skipped" >&2; fi

# Every benchmark prints its figures and records them in docs/benchmarks.md (its own section).
# bench.engine, bench.cluster, bench.reads, bench.destroy and bench.file_gc start their own etcd; bench.agent
# uses (or brings up) the local cluster. bench.cluster's 1,000 agents x 100,000 units take minutes.
bench: deps
	$(VENV)/bin/python -m bench.placement --record docs/benchmarks.md
	$(VENV)/bin/python -m bench.engine --suite --record docs/benchmarks.md
	$(VENV)/bin/python -m bench.engine --machines 5000 --units 100000 --incremental --json --record docs/benchmarks.md
	$(VENV)/bin/python -m bench.destroy --units 5000 --record docs/benchmarks.md
	$(VENV)/bin/python -m bench.file_gc --versions 1000 --record docs/benchmarks.md
	$(VENV)/bin/python -m bench.reads --record docs/benchmarks.md
	$(VENV)/bin/python -m bench.cluster --agents 1000 --units 100000
	$(VENV)/bin/python -m bench.agent --record docs/benchmarks.md

# Not part of bench or test: it takes the local cluster (and most of the machine) for minutes.
scale: deps
	$(VENV)/bin/python -m bench.scale --hosts 50 --units 2000 --lose 5

# Every scenario NEMESIS_RUNS times (default 5); table, evidence and the totals' JSON line.
NEMESIS_RUNS ?= 5
nemesis: deps
	NEMESIS_RUNS=$(NEMESIS_RUNS) $(VENV)/bin/python -m nemesis

# The Vagrant cluster for real (needs /dev/kvm and root; not part of `make test`: it takes
# minutes). vagrant-test installs what is missing, starts libvirtd, builds the box if needed.
vagrant-box:
	$(PYTHON) vagrant/vagrant_box.py

vagrant-test:
	$(PYTHON) vagrant/vagrant_cluster.py test
