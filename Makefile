# Two commands on a fresh machine:  make demo  |  make test
# Both create/reuse .venv and install exactly what requirements/cpu.lock pins (hashes checked), after a CPU build
# of torch (requirements/torch.sh; never torchvision). `make test-latest` ignores the lock (drift detector).
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
TORCH_VERSION := 2.13.0
LOCK := requirements/cpu.lock
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml $(LOCK) | sha1sum | cut -c1-8)
LATEST := .venv-latest
GPU_VENV ?= .venv-gpu
LOCK_TORCH_SOURCE ?= --find-links /opt/wheels  # where `make lock` finds the CPU torch build
# pip check, except that decord 0.6.0's wheel says cp36 inside (its file name says py3-none): newer pips report
# it as "not supported on this platform" although it imports and runs; every other finding fails the install.
define pip_check
	@out=$$($(1)/pip check 2>&1 | grep -v -e '^No broken requirements found' \
	  -e '^decord 0.6.0 is not supported on this platform'); test -z "$$out" || { echo "$$out"; exit 1; }
	@echo "pip check: consistent"
endef
export RAY_ENABLE_UV_RUN_RUNTIME_ENV=0
export RAY_USAGE_STATS_ENABLED=0
export TOKENIZERS_PARALLELISM=false

.PHONY: install demo test test-latest lock install-gpu bench clean

$(STAMP): pyproject.toml $(LOCK)
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	bash requirements/torch.sh $(TORCH_VERSION) $(BIN)/python
	$(BIN)/pip install -q --require-hashes --no-deps -r $(LOCK)
	$(BIN)/pip install -q --no-deps --no-build-isolation -e .
	$(call pip_check,$(BIN))
	rm -f $(VENV)/.installed-*
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	rm -rf outputs/demo
	$(BIN)/python -m pipelines.recipe --config configs/demo.yaml $(ARGS)

test: $(STAMP)
	$(BIN)/python -m pytest -q $(ARGS)

# The same suite in a new venv resolved from pyproject's ranges, newest releases, the lock ignored: what a user
# who runs `pip install vital_ray` gets today. A failure here and a pass in `make test` is upstream drift.
test-latest:
	rm -rf $(LATEST)
	$(PY) -m venv $(LATEST)
	bash requirements/torch.sh $(TORCH_VERSION) $(LATEST)/bin/python
	$(LATEST)/bin/pip install -q --upgrade -e ".[dev]"
	$(call pip_check,$(LATEST)/bin)
	@$(LATEST)/bin/python -c "import importlib.metadata as m; \
	print('test-latest resolved:', *(f'{p} {m.version(p)}' for p in ('transformers', 'ray', 'torch', 'numpy')))"
	$(LATEST)/bin/python -m pytest -q $(ARGS)

# Regenerate both locks from pyproject.toml (newest releases within its ranges). The CPU lock leaves torch out
# (requirements/torch.sh installs the CPU build) but resolves against that build's dependencies. uv runs from its
# own small venv (the version the lock pins), so a pyproject edit that the current lock cannot install yet can
# still be locked.
UV_VENV := .venv-uv
UV := $(UV_VENV)/bin/uv
$(UV):
	$(PY) -m venv $(UV_VENV)
	$(UV_VENV)/bin/pip install -q "$$(grep -oE '^uv==[^ ]+' $(LOCK))"

lock: $(UV)
	echo "torch==$(TORCH_VERSION)+cpu" > $(UV_VENV)/torch-cpu.txt
	$(UV) pip compile pyproject.toml requirements/cpu.in --extra dev --generate-hashes --python-version 3.11 \
	  --python-platform x86_64-manylinux_2_28 $(LOCK_TORCH_SOURCE) -c $(UV_VENV)/torch-cpu.txt \
	  --no-emit-package torch --custom-compile-command "make lock" -o $(LOCK)
	$(UV) pip compile pyproject.toml requirements/gpu.in --extra gpu --extra plots --generate-hashes --python-version 3.12 \
	  --python-platform x86_64-manylinux_2_28 --custom-compile-command "make lock" -o requirements/gpu.lock

# A CUDA machine (Python 3.12): the GPU lock, vLLM with the CUDA torch it pins, then vital_ray itself.
install-gpu:
	test -x $(GPU_VENV)/bin/python || python3.12 -m venv $(GPU_VENV)
	$(GPU_VENV)/bin/pip install --require-hashes --no-deps -r requirements/gpu.lock
	$(GPU_VENV)/bin/pip install --no-deps --no-build-isolation -e .
	$(call pip_check,$(GPU_VENV)/bin)

bench: $(STAMP)
	$(BIN)/python benchmarks/tool_decode.py

clean:
	rm -rf outputs .pytest_cache
