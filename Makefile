# Quick start: `make demo` runs the main job, `make test` runs the tests.
# Both install finetec into ./.venv first (CPU PyTorch 2.13.0, never a CUDA build).
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install demo test bench-io clean

$(STAMP): pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet "torch==2.13.0"
	$(BIN)/python -m pip install --quiet -e ".[dev,onnx,openvino]"
	$(BIN)/python -c "import torch; assert not torch.version.cuda, 'a CUDA build of torch was installed'"
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/finetec benchmark

test: $(STAMP)
	$(BIN)/python -m pytest

clean:
	rm -rf $(VENV) runs
