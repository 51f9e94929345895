# Targets CI calls (.ci/run): system-deps, install, lint, audit, deploy-check, test.
# `make help` lists them all.
VENV ?= .venv
PY := $(VENV)/bin/python
TAD := $(VENV)/bin/tad
SMD ?= ../shared/data/SMD
UEA ?= ../shared/data/UEA

.PHONY: help install system-deps lint audit deploy-check test run smd ablation emtc perf quality clean

help:
	@grep -E '^[a-z-]+:.*## ' Makefile | sed 's/:.*## /\t/'

$(VENV)/.installed: pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q torch==2.13.0   # the machine's CPU wheel, never the CUDA build
	$(PY) -m pip install -q -e '.[train,dev]'
	touch $@

install: $(VENV)/.installed  ## virtualenv with the service, the trainer and the dev tools

$(VENV)/.serve: pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e .   # serving only: no torch, pandas or dev tools
	touch $@

system-deps:  ## Debian packages the tests use: redis-server, prometheus, alertmanager, haproxy, docker-compose, mosquitto (+ clients)
	@command -v redis-server >/dev/null && command -v promtool >/dev/null \
	  && command -v prometheus-alertmanager >/dev/null && command -v haproxy >/dev/null \
	  && command -v docker-compose >/dev/null \
	  && { command -v mosquitto || test -x /usr/sbin/mosquitto; } >/dev/null \
	  && command -v mosquitto_sub >/dev/null || { \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
	    redis-server prometheus prometheus-alertmanager haproxy docker-compose mosquitto mosquitto-clients >/dev/null; }

lint: install  ## ruff and mypy
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy detector model_training service tad

audit: install  ## pip-audit of the virtualenv and the runtime image pins; a known vulnerability fails
	VENV=$(VENV) $(PY) .ci/audit.py

deploy-check: install  ## lint the Dockerfile; validate compose, Prometheus, Alertmanager, HAProxy configs
	$(VENV)/bin/hadolint Dockerfile
	GRAFANA_ADMIN_PASSWORD=check docker-compose -f docker-compose.yml config -q
	GRAFANA_ADMIN_PASSWORD=check docker-compose -f docker-compose.yml \
	  -f deploy/docker-compose.gpu.yml --profile train config -q
	cd deploy/prometheus && promtool check config prometheus.yml \
	  && promtool check config prometheus.compose.yml \
	  && promtool check rules alerts.yml && promtool test rules alerts_test.yml
	amtool check-config deploy/alertmanager/alertmanager.yml
	haproxy -c -q -f deploy/haproxy/haproxy.cfg

test: install  ## the whole test suite
	$(VENV)/bin/pytest

run: $(VENV)/.serve  ## serve on http://127.0.0.1:8000 with the committed demo model (no torch)
	$(TAD) serve --demo --model-dir models --host 127.0.0.1 --port 8000

smd: install  ## train 19 SMD bundles, evaluate them and the baselines (README table; ~25 min on 2 cores)
	$(PY) bench/smd.py --data $(SMD) --out runs/smd --jobs 2

ablation: install  ## score and calibration ablation on SMD (docs/ccm_tad.md table; ~25 min on 2 cores)
	$(PY) bench/score_ablation.py --data $(SMD) --out runs/ablation --jobs 2

emtc: install  ## EMTC on six UEA datasets (docs/emtc.md table)
	$(PY) bench/emtc_uea.py --data-root $(UEA)

image-check: install  ## build the real images and check them in containers (deploy/README.md; ~5 min cold)
	@command -v dockerd >/dev/null && command -v mmdebstrap >/dev/null || { \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
	    docker.io mmdebstrap >/dev/null; }
	$(PY) deploy/image_check.py

perf: install  ## speed and memory side by side with River (README performance table; ~5 min)
	$(PY) bench/perf.py

clean:
	rm -rf $(VENV) runs .pytest_cache .mypy_cache .ruff_cache

MSL ?= ../shared/data/MSL
quality: install  ## the development suite: train and evaluate the default and every baseline on SMD and MSL (docs/ccm_tad.md; ~30 min on 2 cores)
	$(PY) bench/quality.py --smd $(SMD) --msl $(MSL) --out runs/quality --jobs 2 --readme README.md
