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

# The README's tables; quality needs the corpus (`make corpus`).
MODELS = openunmix mmdensenet waveunet deepconvsep wavenet
bench: setup
	.venv/bin/python bench/realtime.py
	.venv/bin/python bench/speed.py --shipped --models $(MODELS) --lengths 30 240 600 --threads 2
	.venv/bin/python bench/quality.py --data corpus --split test --tracks 6 --seconds 20 --threads 2 \
		--models $(MODELS) --wiener 1

package: setup
	bash packaging/build.sh

corpus: setup
	.venv/bin/shotoku dataset synth --out corpus
