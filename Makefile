# Two set-up commands: `make demo` and `make test`. Each creates .venv when missing.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip

.PHONY: demo test install clean-demo check-demo install-translation

$(VENV)/.installed: pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	$(PIP) install -q -e ".[test]"
	touch $@

install: $(VENV)/.installed

# Baseline, label smoothing and Self-KD on scikit-learn's bundled digits; prints Table 1 (demo).
demo: install
	MPLBACKEND=Agg $(PY) -m classification.demo

# The tests cover the fairseq plugin too, so they need fairseq (built once, ~6 min on 2 cores).
test: install install-translation
	MPLBACKEND=Agg $(PY) -m pytest -q tests

# Rerun the demo and check the README's demo table against it within the seed spread (same-seed
# runs are bit-identical on one machine, not across machines).
check-demo: install
	MPLBACKEND=Agg $(PY) tools/check_demo.py

clean-demo:
	rm -rf runs/demo reports/out/demo

# --- reports (begin) ---
# Tables 1–5 (Markdown, LaTeX, CSV), Fig. 2 and reliability diagrams from run logs under
# $(REPORT_RUNS); outputs in $(REPORT_OUT). Reads logs only, never trains.
REPORT_RUNS ?= runs reports/runs
REPORT_OUT  ?= reports/out
REPORTS     := MPLBACKEND=Agg $(PY) -m reports

.PHONY: tables table1 table2 table3 table4 table5 figures check-repro test-reports

table1 table2 table3 table4 table5 tables: install
	$(REPORTS) $@ --runs $(REPORT_RUNS) --out $(REPORT_OUT)

figures: install
	$(REPORTS) figures --runs $(REPORT_RUNS) --out $(REPORT_OUT)

# Committed logs (reports/runs/) against reports/expected_results.yaml; non-zero exit on drift.
check-repro: install
	$(REPORTS) check-repro --runs reports/runs --expected reports/expected_results.yaml

test-reports: install
	MPLBACKEND=Agg $(PY) -m pytest -q tests/reports
# --- reports (end) ---

# --- translation (begin) ---
# fairseq for the translation plugin (translation/). The fork fairseq-fixed 0.12.3.1 is an sdist
# whose C++/Cython extensions build against the installed torch: --no-build-isolation (else pip
# builds it against a second torch), with Cython and wheel present first (without Cython the
# build looks for data_utils_fast.cpp, which the sdist lacks). About 5-6 minutes on 2 cores.
.PHONY: install-translation prep-multi30k prep-iwslt15 table4-multi30k

install-translation: $(VENV)/.translation-installed

$(VENV)/.translation-installed: $(VENV)/.installed pyproject.toml
	$(PIP) install -q -e ".[translation]" "cython>=0.29" wheel
	$(PIP) install -q --no-build-isolation fairseq-fixed==0.12.3.1
	touch $@

# Multi30k de-en from ../shared/data/multi30k -> data/multi30k_de_en/{raw,tok,bpe,bin}
prep-multi30k: install-translation
	$(PY) -m translation.data --config translation/configs/prep/multi30k_de_en.yaml

# IWSLT15 en-de (2015-01 release, not downloadable here): IWSLT15=/path/to/en-de.tgz; without it
# the target stops in one line before anything is installed or run
ifneq ($(filter prep-iwslt15,$(MAKECMDGOALS)),)
ifeq ($(strip $(IWSLT15)),)
$(error IWSLT15 is not set: pass IWSLT15=/path/to/en-de.tgz (the IWSLT15 2015-01 release; it cannot be downloaded here), e.g. make prep-iwslt15 IWSLT15=$$HOME/data/en-de.tgz)
endif
endif
prep-iwslt15: install-translation
	$(PY) -m translation.data --config translation/configs/prep/iwslt15_en_de.yaml raw_path=$(IWSLT15)

# Table 4, Multi30k column: baseline, label smoothing, Self-KD (150 epochs each; a GPU job), in
# runs/table4/<run_id>/; rerunning it resumes the unfinished runs and skips the finished ones
table4-multi30k: prep-multi30k
	$(PY) -m translation.train --config translation/configs/multi30k_de_en_baseline.yaml resume=true
	$(PY) -m translation.train --config translation/configs/multi30k_de_en_ls.yaml resume=true
	$(PY) -m translation.train --config translation/configs/multi30k_de_en_selfkd.yaml resume=true
# --- translation (end) ---

# --- classification (begin) ---
# The missing runs of a table, one after another, resumable: make train-table1 SEEDS="0 1 2" ARGS="data.root=/data/cifar100"
SEEDS ?= 0 1 2
ARGS  ?=
.PHONY: train-table1 train-table2 train-fig2 bench

train-table1 train-table2 train-fig2: install
	$(PY) -m classification.launch $(subst train-,,$@) $(ARGS) --seeds $(SEEDS)

# Throughput: official-style loop vs the fast path, and the Self-KD overhead (see BENCHMARKS.md)
bench: install
	$(PY) -m classification.bench $(ARGS)
# --- classification (end) ---

# --- detection (begin) ---
# Table 3 rows (Faster R-CNN on VOC07+12 with Table 2's ResNet-152 backbones), missing runs only:
#   make train-table3 ARGS="data.root=/data/VOCdevkit"
# The CPU learnability check (synthetic shapes in VOC layout, ~10 min on 2 cores):
#   make detection-check
.PHONY: train-table3 detection-check

train-table3: install
	for m in baseline ls selfkd; do \
	  $(PY) -m detection.train --config detection/configs/resnet152_$$m.yaml $(ARGS) resume=true || exit $$?; \
	done

detection-check: install
	test -d data/synthetic_voc || $(PY) -m detection.synthetic --out data/synthetic_voc
	OMP_NUM_THREADS=1 $(PY) -m detection.train --config detection/configs/synthetic_learnability.yaml $(ARGS) resume=true
# --- detection (end) ---

