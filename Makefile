# anycast-lab: set-up, tests and lab life cycle. Targets that need root say so.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV := .venv
VPY := $(VENV)/bin/python
ANYLAB := $(VENV)/bin/anylab
TOPO ?= topologies/three-sites.yaml
PYTEST_ARGS ?=

# command -> Debian package providing it (installed only when the command is missing)
SYSTEM_COMMANDS := \
	vtysh:frr /usr/lib/frr/bgpd:frr gobgpd:gobgpd gobgp:gobgpd ip:iproute2 tc:iproute2 \
	nft:nftables ethtool:ethtool fping:fping iperf3:iperf3 gcc:gcc unshare:util-linux \
	pgrep:procps ping:iputils-ping ss:iproute2 nsenter:util-linux conntrack:conntrack

NAME ?=
NAME_ARG := $(if $(NAME),--name $(NAME),)

.PHONY: help setup containerlab-setup mininet-setup examples-setup system-packages venv test test-unit test-integration lint graph clean \
	lab-up lab-down lab-status scenario report notebook demo ecmp-collateral

help:
	@echo "make setup             install system packages (root) and the Python venv"
	@echo "make test              set up (both backends), then run every test (root)"
	@echo "make containerlab-setup          Docker engine, containerlab and images (root)"
	@echo "make mininet-setup               Debian's mininet for the Mininet backend (root)"
	@echo "make examples-setup              NSD, nginx and dig for the example workloads (root)"
	@echo "make test-unit         tests that need no root"
	@echo "make lint              ruff and mypy"
	@echo "make graph [TOPO=...]  draw a topology to build/topology.png"
	@echo "make lab-up [TOPO=...] [NAME=...]   bring a lab up (root; default: the reference lab)"
	@echo "make lab-status [NAME=...]          sessions, announcements, where clients land"
	@echo "make lab-down [NAME=...]            remove the lab completely"
	@echo "make scenario S=scenarios/X.yaml    play a scenario (brings the lab up if needed)"
	@echo "make report [RUNS=runs/...]         self-contained HTML report of runs"
	@echo "make notebook                       Jupyter on notebooks/"
	@echo "make demo                           set up, run node-crash-bfd on the reference lab, report"
	@echo "make ecmp-collateral                a node crash with default, resilient, resilient +"
	@echo "                                    consistent hashing; one report compares them"

setup: system-packages venv

system-packages:
	@missing=""; \
	for pair in $(SYSTEM_COMMANDS); do \
		cmd=$${pair%%:*}; pkg=$${pair##*:}; \
		if ! command -v $$cmd >/dev/null 2>&1 && [ ! -x $$cmd ] \
			&& [ ! -x /usr/sbin/$$cmd ] && [ ! -x /sbin/$$cmd ]; then missing="$$missing $$pkg"; fi; \
	done; \
	if ! $(PYTHON) -c 'import venv, ensurepip' >/dev/null 2>&1; then missing="$$missing python3-venv"; fi; \
	missing=$$(echo $$missing | tr ' ' '\n' | sort -u | tr '\n' ' '); \
	if [ -n "$${missing// /}" ]; then \
		if [ "$$(id -u)" != 0 ]; then echo "missing packages:$$missing; run as root (sudo make setup)"; exit 1; fi; \
		echo "installing:$$missing"; \
		export DEBIAN_FRONTEND=noninteractive; \
		apt-get update -qq && apt-get install -y -qq --no-install-recommends $$missing; \
	else echo "system packages: all present"; fi

venv: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	@$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), "Python >= 3.11 needed"'
	$(PYTHON) -m venv $(VENV)
	$(VPY) -m pip install -q --upgrade pip
	$(VPY) -m pip install -q -e '.[dev,notebooks]'
	$(VPY) -m lab.impair.build >/dev/null
	$(VPY) -m lab.apps.server.build >/dev/null
	@touch $@

# the containerlab backend's tools: docker.io and mmdebstrap, the engine (started when not
# running), containerlab built from its Go module into .tools/, the images (when missing)
containerlab-setup: setup
	$(VPY) -m lab.backend.containerlab.tools

# the Mininet backend's tools: Debian's mininet (with mnexec), importable by the venv's Python
mininet-setup: setup
	$(VPY) -m lab.backend.mininet.tools

# the shipped example workloads' programs: nsd (dns-anycast.yaml), nginx (web-anycast.yaml), dig
examples-setup: setup
	$(VPY) -m lab.backend.example_tools

test: setup containerlab-setup mininet-setup examples-setup
	ANYLAB_FULL_SETUP=1 $(VPY) -m pytest $(PYTEST_ARGS)

test-unit: venv
	$(VPY) -m pytest -m 'not integration' $(PYTEST_ARGS)

test-integration: setup containerlab-setup mininet-setup examples-setup
	ANYLAB_FULL_SETUP=1 $(VPY) -m pytest -m integration $(PYTEST_ARGS)

lint: venv
	$(VENV)/bin/ruff check lab analysis tests bench
	$(VENV)/bin/mypy

graph: venv
	@mkdir -p build
	$(ANYLAB) graph $(TOPO) -o build/topology.png

lab-up: setup
	$(ANYLAB) up $(TOPO) $(NAME_ARG)

lab-status: venv
	$(ANYLAB) status $(NAME_ARG)

lab-down: venv
	$(ANYLAB) down $(NAME_ARG)

RUNS ?= $(shell ls -td runs/*/ 2>/dev/null | head -1)
OUT ?= runs/report.html
report: venv
	@test -n "$(RUNS)" || { echo "no run yet: make scenario first, or give RUNS=runs/<dir>"; exit 2; }
	$(ANYLAB) report $(RUNS) -o $(OUT)

notebook: venv
	$(VPY) -m ipykernel install --sys-prefix --name anycast-lab --display-name "anycast-lab"
	$(VENV)/bin/jupyter lab notebooks/

DEMO_SCENARIO := scenarios/node-crash-bfd.yaml
demo: setup
	$(ANYLAB) run $(DEMO_SCENARIO) --runs runs
	$(ANYLAB) report "$$(ls -td runs/*-node-crash-bfd/ | head -1)" -o runs/demo-report.html
	@echo "report: $(CURDIR)/runs/demo-report.html (open it in a browser)"

# the same crash and return three ways (docs/collateral.md), each on its own lab, one report
ECMP_WAYS := ecmp-collateral ecmp-collateral-resilient ecmp-collateral-consistent
ecmp-collateral: setup
	@for way in $(ECMP_WAYS); do $(ANYLAB) run scenarios/$$way.yaml --runs runs || exit $$?; done
	$(ANYLAB) report $$(for way in $(ECMP_WAYS); do ls -td runs/*-$$way/ | head -1; done) \
		-o runs/ecmp-collateral.html
	@echo "report: $(CURDIR)/runs/ecmp-collateral.html (open it in a browser)"

S ?= scenarios/node-crash-bfd.yaml
scenario: setup
	$(ANYLAB) run $(S) $(NAME_ARG)

clean:
	rm -rf build .pytest_cache .mypy_cache .ruff_cache

# Benchmarks (root): every part by default, or BENCH_ARGS='--only netns,up' to rerun parts;
# prints a table and writes bench/results/latest.json (see docs/benchmarks.md).
BENCH_ARGS ?=
.PHONY: bench
bench: setup containerlab-setup mininet-setup
	$(VPY) bench/run_all.py $(BENCH_ARGS)
