# The two commands a new user needs:   make run    and    make test
# Everything else is a step of those two, or a convenience.
.PHONY: setup run job test test-unit test-job test-chaos test-integration chaos bench quality stack-up stack-down stack-status synth package clean

PY := .venv/bin/python

setup:
	@bash deploy/setup.sh

## Kafka and Redis on loopback, the job on the local Flink mini-cluster, the MovieLens
## sample replayed, one user's top-10 shown as it changes. Kafka and Redis stay up after.
run: setup stack-up
	$(PY) -m lab.demo

## The job alone against the running stack (Ctrl-C stops it); settings: see `--help`.
job: setup stack-up
	$(PY) -m flink_jobs.main --config deploy/local/demo.toml

## Unit (seconds, no JVM), job (local Flink), integration (real Kafka, Redis and Flink) and
## chaos tests (a standalone Flink cluster under kills); services are started and stopped by
## the tests, which list their slowest at the end. About a quarter of an hour here.
test: setup
	$(PY) -m pytest tests --durations=15

test-unit: setup
	$(PY) -m pytest tests/unit

test-job: setup
	$(PY) -m pytest tests/job

test-chaos: setup
	$(PY) -m pytest tests -m chaos -s

test-integration: setup
	$(PY) -m pytest tests -m integration

## The chaos scenario by hand, on the stack and a standalone cluster (both left running):
##   make chaos SEED=11 EVENTS=20000 KILLS=2 [CHAOS_FLAGS="--redis-write unconditional"]
SEED ?= 7
EVENTS ?= 20000
KILLS ?= 2
chaos: setup stack-up
	@bash deploy/flink/cluster.sh start
	$(PY) -m lab.chaos --seed $(SEED) --events $(EVENTS) --kills $(KILLS) $(CHAOS_FLAGS)

## The core's throughput; the end-to-end benchmark on the real deployment (own Kafka, Redis and
## standalone cluster on other ports, stopped afterwards: bench/results/e2e.json and .png); the
## read API's latency at 1,000 requests/s and its top rate (bench/results/api.json).
bench: setup
	$(PY) bench/throughput.py
	$(PY) bench/e2e.py
	$(PY) bench/api.py

## Recommendation quality on MovieLens (prequential HR@10/NDCG@10, baselines and the job).
quality: setup
	$(PY) bench/quality.py --model --retrain-every 0.1 --json bench/results/quality.json --plot bench/results/quality.png

stack-up: setup
	@bash deploy/local/stack.sh start

stack-down:
	-@$(PY) -m lab.api stop
	@bash deploy/local/stack.sh stop

stack-status:
	@bash deploy/local/stack.sh status

synth: setup stack-up
	$(PY) -m reco_tools.synth --events 100000

## The job's Python environment for a cluster that is not this project's: dist/reco-env.tar.gz
## (docs/operations.md "Submitting to an existing cluster"); a no-op while up to date.
package: setup
	@bash deploy/package.sh

clean: stack-down
	@bash deploy/flink/cluster.sh stop
	rm -rf .run
