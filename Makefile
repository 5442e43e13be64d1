# labelless developer commands. Every target installs what it needs into .venv first.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.labelless-installed
TORCH_PIN := torch==2.14.1 torchvision==0.29.1
# The optional extras whose tests must run here and in CI (each such test skips without them).
EXTRAS := dev,graphs,faiss,tensorboard,mlflow,wandb,stream
export OMP_NUM_THREADS ?= 2

.PHONY: venv demo test test-fast lint format bench clean

venv: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet $(TORCH_PIN)
	$(BIN)/python -m pip install --quiet -e ".[$(EXTRAS)]" $(TORCH_PIN)
	touch $(STAMP)

demo: venv
	$(BIN)/labelless demo

test: venv
	$(BIN)/python -m pytest -q --timeout=600

test-fast: venv
	$(BIN)/python -m pytest -q tests/unit -m "not slow and not distributed" --timeout=300

lint: venv
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench

format: venv
	$(BIN)/ruff format src tests bench
	$(BIN)/ruff check --fix src tests bench

clean:
	rm -rf $(VENV) build dist src/*.egg-info .pytest_cache .ruff_cache
