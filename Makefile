# The two commands a new user needs:   make run    and    make test
# Everything else is a step of those two, or a convenience.
.PHONY: setup run test test-unit test-integration stack-up stack-down stack-status replay synth clean

PY := .venv/bin/python

setup:
	@bash deploy/setup.sh

## Bring up Kafka and Redis on loopback, create the topics, replay the MovieLens sample.
run: setup stack-up
	$(PY) -m flink_jobs.tools.replay
	@echo "[run] The Flink job is not built yet (issue: the stateful recommender job)."
	@echo "[run] The events are in Kafka: .venv/bin/reco-consume --topic reco.user-events.v1 --max 5"

## Every test: unit (seconds, no JVM) and integration (real Kafka and Redis, started and stopped by the tests).
test: setup
	$(PY) -m pytest tests

test-unit: setup
	$(PY) -m pytest tests/unit

test-integration: setup
	$(PY) -m pytest tests -m integration

stack-up: setup
	@bash deploy/local/stack.sh start

stack-down:
	@bash deploy/local/stack.sh stop

stack-status:
	@bash deploy/local/stack.sh status

synth: setup stack-up
	$(PY) -m flink_jobs.tools.synth --events 100000

clean: stack-down
	rm -rf .run
