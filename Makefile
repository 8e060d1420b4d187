# Two set-up commands: `make demo` and `make test`. Each creates .venv when missing.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip

.PHONY: demo test install clean-demo

$(VENV)/.installed: pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	$(PIP) install -q -e ".[test]"
	touch $@

install: $(VENV)/.installed

# Baseline, label smoothing and Self-KD on scikit-learn's bundled digits; prints Table 1 (demo).
demo: install
	MPLBACKEND=Agg $(PY) -m classification.demo

test: install
	MPLBACKEND=Agg $(PY) -m pytest -q tests

clean-demo:
	rm -rf runs/demo reports/out/demo
