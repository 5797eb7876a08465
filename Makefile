# The two commands of the README's Quick start. Each one installs everything first.
export PATH := $(CURDIR)/.venv/bin:$(PATH)
.PHONY: setup up test lint bench

setup:
	@scripts/setup.sh

up: setup
	.venv/bin/platform up

test: setup
	.venv/bin/nox

lint: setup
	.venv/bin/nox -s lint typecheck

bench: setup
	.venv/bin/nox -s bench
