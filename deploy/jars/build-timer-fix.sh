#!/usr/bin/env bash
# Compiles the PyFlink timer fix (flink_jobs/internals.py, install_timer_fix) against the
# jars of an installed PyFlink, so that the two always match:
#   deploy/jars/build-timer-fix.sh PYTHON OUT_JAR
# PYTHON: an interpreter with apache-flink installed; needs a JDK 17 (javac, jar).
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
python="${1:?usage: build-timer-fix.sh PYTHON OUT_JAR}"
out="${2:?usage: build-timer-fix.sh PYTHON OUT_JAR}"
command -v javac >/dev/null || { echo "javac not found: the PyFlink timer fix is compiled with a JDK 17" >&2; exit 1; }
pyflink="$("$python" -c 'import pyflink, os; print(os.path.dirname(pyflink.__file__))')"
src=("$HERE"/timer-fix/reco/pyflink/*.java)
build="$(mktemp -d)"
trap 'rm -rf "$build"' EXIT
python_jar=("$pyflink"/opt/flink-python-*.jar)
javac -nowarn -d "$build" -cp "$pyflink/lib/*:${python_jar[0]}" "${src[@]}" 2>&1 | grep -v '^Note:' || true
[ -f "$build/reco/pyflink/ExternalPythonKeyedProcessOperator.class" ] || { echo "javac failed on ${src[*]}" >&2; exit 1; }
mkdir -p "$(dirname "$out")"
jar cf "$out" -C "$build" reco
