#!/usr/bin/env bash
# The job's Python environment as one relocatable archive, for a Flink cluster whose
# TaskManagers have no Python of ours (docs/operations.md "Submitting to an existing cluster"):
#
#   deploy/package.sh [--force]        -> dist/reco-env.tar.gz (and dist/reco-env.txt: what is in it)
#
# The archive holds a copy of the interpreter .venv was made from (its binary, libpython and
# standard library) with the job's runtime dependencies ([project.dependencies] of
# pyproject.toml, at the versions installed in .venv) in its own site-packages: no symlink
# out of it, no absolute path in it. Ship it with `flink run -pyarch reco-env.tar.gz#venv
# -pyexec venv/bin/python` (deploy/flink/cluster.sh submit does, with RECO_FLINK_ARCHIVE).
# The job's own code (flink_jobs, udfs, schemas) is not in it: every submission ships the
# client's copy with -pyfs, the same code that builds the job graph.
#
# Rebuilt only when pyproject.toml, the versions in .venv, the interpreter or this script
# changed (--force: always). pip downloads go through pip's own cache. Settings: RECO_DIST_DIR
# (dist). Needs the network the first time (PyPI), like deploy/setup.sh.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$ROOT/.venv"
OUT_DIR="$(realpath -m "${RECO_DIST_DIR:-$ROOT/dist}")"
ARCHIVE="$OUT_DIR/reco-env.tar.gz"
# PyFlink's jars (the Flink distribution inside the package): the client's JVM needs them,
# a Python worker never starts a JVM. A third of the environment's size.
PRUNE=(pyflink/lib pyflink/opt pyflink/plugins pyflink/examples)

say() { printf '[package] %s\n' "$*"; }
die() { printf '[package] ERROR: %s\n' "$*" >&2; exit 1; }

force=0
case "${1:-}" in --force) force=1 ;; "") ;; *) sed -n '2,20p' "$0" | sed 's/^# \{0,1\}//'; exit 2 ;; esac
[ -x "$VENV/bin/python" ] || die "no .venv: run deploy/setup.sh"
mkdir -p "$OUT_DIR"
WORK="$(mktemp -d "$OUT_DIR/.build.XXXXXX")"
trap 'rm -rf "$WORK"' EXIT

# The interpreter behind .venv, and what to install: [project.dependencies] and the job's
# extra, pinned to the versions .venv has (the ones the tests ran), so that the cluster runs what was tested.
"$VENV/bin/python" - "$ROOT/pyproject.toml" "$WORK" <<'PY'
import sys, sysconfig, tomllib
pyproject, work = sys.argv[1], sys.argv[2]
project = tomllib.load(open(pyproject, "rb"))["project"]
deps = project["dependencies"] + project["optional-dependencies"]["job"]
open(f"{work}/requirements.txt", "w").write("".join(f"{d}\n" for d in deps))
cv = sysconfig.get_config_var
shared = cv("INSTSONAME") if cv("Py_ENABLE_SHARED") else ""
open(f"{work}/base.sh", "w").write(
    f"BASE={sys.base_prefix!r}\nVER={cv('VERSION')!r}\nLIBPYTHON={shared!r}\n"
    f"BASE_LIBDIR={cv('LIBDIR')!r}\nFULL_VERSION={sys.version.split()[0]!r}\n")
PY
# shellcheck disable=SC1091
. "$WORK/base.sh"
# (a direct reference, `name @ url`, cannot be a constraint: such a package floats)
"$VENV/bin/python" -m pip freeze --exclude-editable --disable-pip-version-check | { grep -v ' @ ' || true; } >"$WORK/constraints.txt"
key="$( { cat "$0" "$ROOT/pyproject.toml" "$WORK/constraints.txt"; echo "$BASE $FULL_VERSION"; } | sha256sum | cut -d' ' -f1)"
if [ $force = 0 ] && [ -f "$ARCHIVE" ] && [ "$(cat "$ARCHIVE.key" 2>/dev/null)" = "$key" ]; then
  say "up to date: $ARCHIVE ($(du -h "$ARCHIVE" | cut -f1))"
  exit 0
fi

# --- the interpreter: a prefix of its own (bin/, lib/), found from the binary's location ----
ENV="$WORK/venv"
say "copying Python $FULL_VERSION from $BASE"
mkdir -p "$ENV/bin" "$ENV/lib/python$VER/site-packages"
cp "$BASE/bin/python$VER" "$ENV/bin/python$VER"
[ -z "$LIBPYTHON" ] || cp "$BASE_LIBDIR/$LIBPYTHON" "$ENV/lib/"
# The standard library without its tests, its GUI and build files, and without the base's
# own site-packages (anything installed there is not the job's).
tar -C "$BASE/lib" -cf - --exclude="python$VER/site-packages" --exclude="python$VER/test" \
    --exclude="python$VER/idlelib" --exclude="python$VER/tkinter" --exclude="python$VER/turtledemo" \
    --exclude="python$VER/ensurepip" --exclude="python$VER/config-*" --exclude="_tkinter*.so" "python$VER" \
  | tar -C "$ENV/lib" -xf -
# bin/python: the binary with the libpython beside it, wherever the archive was extracted (the
# binary itself names the base's lib/ as an absolute RUNPATH, which LD_LIBRARY_PATH precedes).
cat >"$ENV/bin/python" <<SH
#!/bin/sh
# This environment's interpreter, from wherever it was extracted (deploy/package.sh).
here="\$(cd -- "\$(dirname -- "\$0")" && pwd)"
LD_LIBRARY_PATH="\$here/../lib\${LD_LIBRARY_PATH:+:\$LD_LIBRARY_PATH}" exec "\$here/python$VER" "\$@"
SH
chmod 755 "$ENV/bin/python"
ln -s python "$ENV/bin/python3"

# --- the job's dependencies, installed by pip running in the new interpreter ------------
say "installing $(paste -sd' ' "$WORK/requirements.txt") (pinned to .venv's versions)"
"$VENV/bin/python" -m pip --python "$ENV/bin/python" install --disable-pip-version-check --root-user-action=ignore -q \
    --no-warn-script-location -r "$WORK/requirements.txt" -c "$WORK/constraints.txt"
"$VENV/bin/python" -m pip --python "$ENV/bin/python" freeze --disable-pip-version-check >"$WORK/reco-env.txt"
# Entry-point scripts carry the build directory in their #! line: only the interpreter stays.
find "$ENV/bin" -mindepth 1 -maxdepth 1 ! -name python ! -name python3 ! -name "python$VER" -exec rm -rf {} +
for p in "${PRUNE[@]}"; do rm -rf "$ENV/lib/python$VER/site-packages/$p"; done

say "writing $ARCHIVE"
tar -C "$ENV" -cf - . | gzip -6 >"$WORK/reco-env.tar.gz"

# --- the check: extracted elsewhere, with an empty environment, nothing loaded from outside -
say "checking the archive extracted in another directory"
mkdir -p "$WORK/check/elsewhere/venv"
tar -C "$WORK/check/elsewhere/venv" -xzf "$WORK/reco-env.tar.gz"
rm -rf "$ENV"   # the build copy must not be what the check finds
( cd "$WORK/check" && env -i PATH=/usr/bin:/bin elsewhere/venv/bin/python -I - "$BASE" "$VENV" <<'PY'
import sys, os
here = os.path.realpath("elsewhere/venv")
import numpy, redis, fastavro, pandas, pyarrow, apache_beam  # noqa: F401  the job's and PyFlink's
import pyflink.fn_execution.beam.beam_sdk_worker_main        # noqa: F401  what a Python worker runs
import pyflink.fn_execution.coder_impl_fast                  # noqa: F401  PyFlink's compiled part
assert os.path.realpath(sys.prefix) == here, (sys.prefix, here)
outside = [line.split()[-1] for line in open("/proc/self/maps")
           if any(line.split()[-1].startswith(p + "/") for p in sys.argv[1:])]
assert not outside, f"loaded from outside the archive: {sorted(set(outside))}"
print(f"[package] ok: Python {sys.version.split()[0]}, numpy {numpy.__version__}, "
      f"apache-flink {__import__('pyflink.version').version.__version__}, loaded from the archive only")
PY
) || die "the archive does not work on its own (see above)"

mv "$WORK/reco-env.txt" "$OUT_DIR/reco-env.txt"
mv "$WORK/reco-env.tar.gz" "$ARCHIVE"
echo "$key" >"$ARCHIVE.key"
say "done: $ARCHIVE ($(du -h "$ARCHIVE" | cut -f1); contents in $OUT_DIR/reco-env.txt)"
say "use: RECO_FLINK_ARCHIVE=$ARCHIVE RECO_FLINK_JOBMANAGER=<host:port> deploy/flink/cluster.sh submit ..."
