# The two commands of the README's Quick start. Each one installs everything first.
export PATH := $(CURDIR)/.venv/bin:$(PATH)
.PHONY: setup up test lint bench

setup:
	@scripts/setup.sh

up: setup
	.venv/bin/platform up

# nox's default sessions in two lanes at once (scripts/lanes.py). A run ends with each session's
# wall seconds; a failed one then names its failed tests (from the sessions' JUnit reports).
test: setup
	@rm -rf .reports
	.venv/bin/python scripts/lanes.py; rc=$$?; .venv/bin/python scripts/session_times.py .reports; \
	  if [ $$rc -ne 0 ]; then .venv/bin/python scripts/ci_failures.py .reports; exit 1; fi

lint: setup
	.venv/bin/nox -s lint typecheck

bench: setup
	.venv/bin/nox -s bench
