"""The lab around the job: harnesses, the brute-force oracle, the chaos driver, the demo.

Tests and benchmarks import it; the package (``pyproject.toml``) and the image never ship
it. Which piece to use:

- ``lab.inprocess``: the whole dataflow's step functions in one Python process (seconds);
- ``lab.inmemory``: the real PyFlink pipeline on a local environment from in-memory input;
- ``lab.jobs``: the real job (``flink_jobs.main``) in a child process, with Kafka and Redis;
- ``lab.flinkcluster``: a standalone cluster (``deploy/flink/cluster.sh``) under test;
- ``lab.oracle``: what a failure-free run must produce, from docs/algorithm.md alone;
- ``lab.wait.wait_for``: the one way to wait for an outcome.
"""
