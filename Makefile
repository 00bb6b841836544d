# make demo: a demonstration in a temporary repository.  make test: lint and the whole suite.
# Both bootstrap what they need: a .venv with the kernel and every plugin installed editable,
# and git-lfs (through apt-get where it is missing).

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PLUGIN_DIRS := $(patsubst %/pyproject.toml,%,$(wildcard plugins/*/*/pyproject.toml))
PYTEST_WORKERS ?= 2

.PHONY: bootstrap test lint demo bench clean

# Compiled once here: with PYTHONDONTWRITEBYTECODE set, every git-theta process would compile
# the editable sources again (a third of its start-up).
bootstrap: $(VENV)/.installed
	@scripts/ensure-git-lfs.sh
	@$(BIN)/python -m compileall -q kernel/src $(PLUGIN_DIRS) > /dev/null

$(VENV)/.installed: requirements-dev.txt kernel/pyproject.toml $(addsuffix /pyproject.toml,$(PLUGIN_DIRS))
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -r requirements-dev.txt
	$(BIN)/python -m pip install -q -e kernel $(addprefix -e ,$(PLUGIN_DIRS))
	touch $@

lint: bootstrap
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

test: lint
	$(BIN)/python -m pytest -n $(PYTEST_WORKERS) --dist loadfile

demo: bootstrap
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/python scripts/demo.py

# Wheels of every distribution (the kernel, each plugin, theta-vcs) and their dependencies, in
# dist/: `pip install --no-index --find-links dist theta-vcs` installs Theta from there offline.
.PHONY: dist
dist: bootstrap
	$(BIN)/python scripts/dist.py dist

bench: bootstrap
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/python bench/run.py

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
