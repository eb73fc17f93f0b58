# The two commands a fresh machine needs (see README): `make run` and `make test`.
.PHONY: setup run test lint bench package corpus

setup:
	bash scripts/setup.sh

run: setup
	.venv/bin/shotoku resources/demo/mixture.flac  # the demo on every start, not only the first

test: setup
	bash scripts/test.sh

lint: setup
	.venv/bin/ruff check .

# The README's tables; quality needs the corpus (`make corpus`), realcheck a check set
# (`shotoku dataset check --out DIR --real REAL`; SHOTOKU_CHECK=DIR, default check/).
MODELS = openunmix mmdensenet waveunet deepconvsep wavenet
bench: setup
	.venv/bin/python bench/realtime.py
	.venv/bin/python bench/speed.py --shipped --models $(MODELS) --lengths 30 240 600 --threads 2
	.venv/bin/python bench/quality.py --data corpus --split test --threads 2 --models $(MODELS) --wiener 1 --best
	.venv/bin/python bench/realcheck.py --data $${SHOTOKU_CHECK:-check} --best --threads 2 --models $(MODELS)

package: setup
	bash packaging/build.sh

corpus: setup
	.venv/bin/shotoku dataset synth --out corpus
