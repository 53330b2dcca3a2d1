#!/usr/bin/env bash
# Installs everything the project needs, idempotently: the Python venv (.venv), the jars
# from Maven Central (.cache/jars), and Debian's redis-server, chromium and chromium-driver.
# Re-running is cheap: each step is skipped while its stamp is newer than the file it was
# made from.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
PYTHON="${PYTHON:-python3}"
JARS_DIR="${RECO_JARS_DIR:-$ROOT/.cache/jars}"

say() { printf '[setup] %s\n' "$*"; }
die() { printf '[setup] ERROR: %s\n' "$*" >&2; exit 1; }

# --- Python -------------------------------------------------------------------------
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))' \
    || die "$PYTHON is $("$PYTHON" -V 2>&1); PyFlink 2.2 here needs Python 3.11 (set PYTHON=/path/to/python3.11)"
  say "creating .venv with $("$PYTHON" -V)"
  "$PYTHON" -m venv .venv
fi
if [ ! -f .venv/.installed ] || [ pyproject.toml -nt .venv/.installed ]; then
  say "installing Python dependencies (apache-flink is large: a few minutes the first time)"
  .venv/bin/pip install -q --upgrade pip
  .venv/bin/pip install -q -e ".[dev]"
  touch .venv/.installed
fi

# --- Java and jars ---------------------------------------------------------------------
command -v java >/dev/null || die "java not found: Flink and the Kafka broker need Java 17"
stamp="$JARS_DIR/.fetched"
if [ ! -f "$stamp" ] || [ deploy/jars/pom.xml -nt "$stamp" ]; then
  command -v mvn >/dev/null || die "mvn not found: it fetches the jars listed in deploy/jars/pom.xml"
  say "fetching jars from Maven Central into $JARS_DIR"
  rm -rf "$JARS_DIR/kafka" "$JARS_DIR/flink"
  mvn -q -B -f deploy/jars/pom.xml dependency:copy-dependencies \
    -DincludeScope=runtime -DexcludeArtifactIds=flink-sql-connector-kafka \
    -DoutputDirectory="$JARS_DIR/kafka"
  mvn -q -B -f deploy/jars/pom.xml dependency:copy-dependencies \
    -DincludeArtifactIds=flink-sql-connector-kafka -DoutputDirectory="$JARS_DIR/flink"
  touch "$stamp"
fi

# --- PyFlink timer fix (flink_jobs/internals.py) ---------------------------------------
timer_jar="$JARS_DIR/flink/reco-pyflink-timers.jar"
if [ ! -f "$timer_jar" ] || [ -n "$(find deploy/jars/timer-fix deploy/jars/build-timer-fix.sh .venv/.installed -newer "$timer_jar" 2>/dev/null)" ]; then
  say "compiling the PyFlink timer fix"
  bash deploy/jars/build-timer-fix.sh .venv/bin/python "$timer_jar" || die "the PyFlink timer fix did not build"
fi

# --- Redis and a browser ------------------------------------------------------------------
# redis-server for the local stack; chromium and its driver for the live page's browser test.
missing=()
command -v redis-server >/dev/null || missing+=(redis-server)
command -v chromium >/dev/null || missing+=(chromium)
command -v chromedriver >/dev/null || missing+=(chromium-driver)
if [ ${#missing[@]} -gt 0 ]; then
  command -v apt-get >/dev/null || die "${missing[*]} not found and no apt-get to install them"
  say "installing ${missing[*]} from Debian's packages"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q >/dev/null
  apt-get install -y -q "${missing[@]}" >/dev/null
fi
# --- TypeScript -----------------------------------------------------------------------------
# tsc checks real Redis documents against the generated schemas/typescript/reco.ts
# (tests/unit/test_doc_schemas.py); pinned, local to the checkout like the jars.
TS_VERSION=5.9.3
tsc="$ROOT/.cache/node/node_modules/.bin/tsc"
if [ ! -x "$tsc" ] || [ "$("$tsc" --version 2>/dev/null)" != "Version $TS_VERSION" ]; then
  if ! command -v npm >/dev/null; then
    command -v apt-get >/dev/null || die "npm not found (it installs TypeScript for the tests) and no apt-get"
    say "installing nodejs and npm from Debian's packages"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q nodejs npm >/dev/null
  fi
  say "installing TypeScript $TS_VERSION into .cache/node"
  npm install --silent --no-save --no-audit --no-fund --prefix "$ROOT/.cache/node" "typescript@$TS_VERSION" >/dev/null
fi
say "ready"
