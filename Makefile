# The two commands a fresh machine needs (see README): `make run` and `make test`.
.PHONY: setup run test lint bench package corpus

setup:
	bash scripts/setup.sh

run: setup
	.venv/bin/shotoku

test: setup
	bash scripts/test.sh

lint: setup
	.venv/bin/ruff check .

bench: setup
	.venv/bin/python bench/realtime.py
	.venv/bin/python bench/speed.py
	.venv/bin/python bench/quality.py

package: setup
	bash packaging/build.sh

corpus: setup
	.venv/bin/shotoku dataset synth --out corpus
