# Two commands on a fresh clone: `make scan` (the main job on the embedded defaults) and `make test`.
# Each creates or refreshes the virtual environment first; nothing else needs to be installed by hand
# beyond a JDK 17+ (java, and javac: `make install` builds the read-only SQL extension) and, for the tests, FFmpeg
# (infra/check_prereqs.sh says what is missing).

PYTHON ?= python3
# Real faces that `make scan` trains its quick starter detector on when no @champion exists.
CORPUS ?= ../shared/faces-train
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

.PHONY: scan starter test lint install prereqs clean

scan: install prereqs
	$(BIN)/deepsift demo $(if $(wildcard $(CORPUS)/MANIFEST.csv),--corpus $(CORPUS))

starter: install
	$(BIN)/deepsift starter --corpus $(CORPUS)

# Two pytest workers: most tests wait on a JVM, a child process or a sleeping retry, so two share two
# cores well; tests that share a costly fixture stay in one worker (tests/conftest.py). TEST_WORKERS=0
# runs them all in this process.
TEST_WORKERS ?= 2

test: lint prereqs
	bash infra/check_prereqs.sh ffmpeg chromium
	$(BIN)/pytest -n $(TEST_WORKERS) $(PYTEST_ARGS); status=$$?; \
	if [ $$status -eq 5 ]; then echo "pytest collected no tests" >&2; exit 1; fi; exit $$status

# Static checks, configured in pyproject.toml: ruff over the whole tree, then mypy over libs/.
lint: install
	$(BIN)/ruff check
	$(BIN)/mypy

install: $(STAMP)

$(STAMP): pyproject.toml
	test -d $(VENV) || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	bash infra/check_prereqs.sh javac
	$(BIN)/python -m deepsift.lake.readonly
	touch $(STAMP)

prereqs:
	bash infra/check_prereqs.sh java javac

clean:
	rm -rf .deepsift demo
