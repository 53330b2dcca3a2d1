#!/usr/bin/env bash
# A standalone Flink cluster on loopback from the PyFlink distribution in .venv:
#
#   deploy/flink/cluster.sh start                  JobManager + its TaskManagers (idempotent)
#   deploy/flink/cluster.sh stop                   every process this script started
#   deploy/flink/cluster.sh status
#   deploy/flink/cluster.sh start-taskmanager      the TaskManagers missing (after one was killed)
#   deploy/flink/cluster.sh kill-taskmanager       kill -9 every TaskManager and its Python workers (chaos)
#   deploy/flink/cluster.sh submit [--from DIR] [--py FILE] [main.py flags]
#                                                  flink run -d the job (from a checkpoint; FILE
#                                                  instead of flink_jobs/main.py: the benchmark's
#                                                  pass-through job); no secrets as flags
#                                                  (RECO_REDIS_URL, --redis-url-file,
#                                                  --kafka-properties-file); RECO_FLINK_DRY_RUN=1
#                                                  prints the flink run command instead
#   deploy/flink/cluster.sh flink ACTION [ARGS]    the distribution's flink CLI (not on PATH), -m
#                                                  added for list, stop, cancel and savepoint
#
# Settings (environment): RECO_FLINK_REST_PORT (8081), RECO_FLINK_RPC_PORT (6123),
# RECO_FLINK_PROM_PORT (9249: Prometheus metrics, each process on the first free port of it
# and the nine above), RECO_FLINK_TASKMANAGERS (1) of RECO_FLINK_SLOTS (2) slots each (the
# job's python_execution_mode=thread wants one slot per TaskManager: one interpreter each),
# RECO_RUN_DIR (.run; the cluster uses .run/flink: conf, logs, checkpoints, pids),
# RECO_JARS_DIR (.cache/jars: where deploy/setup.sh put the connector and the timer fix).
# Another cluster (submit, flink; docs/operations.md "Submitting to an existing cluster"):
# RECO_FLINK_JOBMANAGER (host:port of its REST endpoint; default localhost:RECO_FLINK_REST_PORT,
# this script's cluster), RECO_FLINK_ARCHIVE (the Python environment of deploy/package.sh,
# shipped with -pyarch and run with -pyexec: TaskManagers need no Python of ours),
# RECO_FLINK_CONF_DIR (the flink client's conf; default with RECO_FLINK_JOBMANAGER: the
# distribution's stock conf, not this cluster's).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
RUN_DIR="$(realpath -m "${RECO_RUN_DIR:-$ROOT/.run}")/flink"  # absolute: Flink needs file:///
VENV="$ROOT/.venv"
# exported absolute: the job's client (flink_jobs/internals.py JARS_DIR) would otherwise look
# beside its flink_jobs, which for a staged copy (RECO_FLINK_ARCHIVE) is not this checkout
export RECO_JARS_DIR="$(realpath -m -- "${RECO_JARS_DIR:-$ROOT/.cache/jars}")"
REST_PORT="${RECO_FLINK_REST_PORT:-8081}"
RPC_PORT="${RECO_FLINK_RPC_PORT:-6123}"
PROM_PORT="${RECO_FLINK_PROM_PORT:-9249}"
[[ "$PROM_PORT" =~ ^[0-9]+$ ]] && (( PROM_PORT > 0 && PROM_PORT + 9 < 65536 )) || { printf '[flink] ERROR: RECO_FLINK_PROM_PORT=%s is not a port number\n' "$PROM_PORT" >&2; exit 1; }
PROM_PORTS="$PROM_PORT-$((PROM_PORT + 9))"
TASKMANAGERS="${RECO_FLINK_TASKMANAGERS:-1}"
SLOTS="${RECO_FLINK_SLOTS:-2}"
[[ "$TASKMANAGERS" =~ ^[1-9]$ ]] || { printf '[flink] ERROR: RECO_FLINK_TASKMANAGERS=%s is not 1 to 9\n' "$TASKMANAGERS" >&2; exit 1; }
[[ "$SLOTS" =~ ^[1-9][0-9]?$ ]] || { printf '[flink] ERROR: RECO_FLINK_SLOTS=%s is not 1 to 99\n' "$SLOTS" >&2; exit 1; }
JOBMANAGER="${RECO_FLINK_JOBMANAGER:-localhost:$REST_PORT}"
[[ "$JOBMANAGER" =~ ^[^[:space:]/]+:[0-9]+$ ]] || { printf '[flink] ERROR: RECO_FLINK_JOBMANAGER=%s is not host:port\n' "$JOBMANAGER" >&2; exit 1; }

say() { printf '[flink] %s\n' "$*"; }
die() { printf '[flink] ERROR: %s\n' "$*" >&2; exit 1; }

[ -x "$VENV/bin/python" ] || die "no .venv: run deploy/setup.sh"
FLINK_HOME="$("$VENV/bin/python" -c 'import os, pyflink; print(os.path.dirname(os.path.abspath(pyflink.__file__)))')"
# lib/ of our own: the distribution's jars plus opt/flink-python, which a cluster running
# Python jobs needs on its classpath and the pip package leaves out of lib/.
export FLINK_HOME FLINK_CONF_DIR="$RUN_DIR/conf" FLINK_LOG_DIR="$RUN_DIR/log" FLINK_PID_DIR="$RUN_DIR" FLINK_LIB_DIR="$RUN_DIR/lib"
export PATH="$VENV/bin:$PATH"  # anything that still asks PATH for python finds the project's

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
# flink-daemon.sh keeps pids in $FLINK_PID_DIR/flink-$USER-<daemon>.pid ($USER may be empty)
# The live daemons of this cluster of one kind (taskexecutor | standalonesession). A pid
# file keeps the pids of daemons that were killed, and the system hands those pids out
# again: a pid counts only while its process is still such a daemon with this cluster's
# conf (a chaos run once kill -9'd other tests' JVMs through recycled pids).
pids_of() {
  local main args; case "$1" in taskexecutor) main=TaskManagerRunner ;; *) main=StandaloneSessionClusterEntrypoint ;; esac
  { cat "$RUN_DIR"/flink-*-"$1".pid 2>/dev/null | grep -E '^[0-9]+$' | while read -r p; do
      args="$( { tr '\0' '\n' < "/proc/$p/cmdline"; } 2>/dev/null)" || continue
      grep -qx -- "--configDir" <<<"$args" && grep -qxF -- "$FLINK_CONF_DIR" <<<"$args" \
        && grep -q -- "\.$main\$" <<<"$args" && echo "$p"
    done; } || true
}

write_conf() {
  mkdir -p "$FLINK_CONF_DIR" "$FLINK_LOG_DIR" "$RUN_DIR/checkpoints" "$RUN_DIR/savepoints"
  # The distribution's JVM options, plus: a JVM that crashes (RocksDB during a cancel, see
  # docs/operations.md "Known problems") writes its report beside the logs, not into the
  # directory it was started from.
  { { grep -E '^env\.java\.opts\.all:' "$FLINK_HOME/conf/config.yaml" 2>/dev/null \
      || "$VENV/bin/python" - "$FLINK_HOME/conf/config.yaml" <<'PY'
import sys, yaml
opts = yaml.safe_load(open(sys.argv[1]))["env"]["java"]["opts"]["all"]
print(f"env.java.opts.all: {opts}")
PY
    } | sed "s#\$# -XX:ErrorFile=$FLINK_LOG_DIR/hs_err_pid%p.log#"
    sed -e "s#@RUN_DIR@#$RUN_DIR#g" -e "s#@VENV@#$VENV#g" -e "s#@REST_PORT@#$REST_PORT#g" \
        -e "s#@RPC_PORT@#$RPC_PORT#g" -e "s#@PROM_PORTS@#$PROM_PORTS#g" \
        -e "s#@SLOTS@#$SLOTS#g" -e "s#@PARALLELISM@#$((TASKMANAGERS * SLOTS))#g" "$ROOT/deploy/flink/config.yaml"; } >"$FLINK_CONF_DIR/config.yaml"
  cp "$FLINK_HOME"/conf/log4j*.properties "$FLINK_CONF_DIR/"
  rm -rf "$FLINK_LIB_DIR" && mkdir -p "$FLINK_LIB_DIR"
  ln -s "$FLINK_HOME"/lib/*.jar "$FLINK_HOME"/opt/flink-python-*.jar "$FLINK_LIB_DIR/"
  echo "localhost:$REST_PORT" >"$FLINK_CONF_DIR/masters"
  # one line per TaskManager, as Flink's own start-cluster.sh reads it: start-taskmanager
  # restores that many after a kill, whatever its own environment says
  for _ in $(seq 1 "$TASKMANAGERS"); do echo "localhost"; done >"$FLINK_CONF_DIR/workers"
}

rest() { "$VENV/bin/python" -c "import json,sys,urllib.request; print(json.dumps(json.load(urllib.request.urlopen('http://127.0.0.1:$REST_PORT$1', timeout=5))))"; }

wait_for_taskmanagers() {  # count seconds
  local deadline=$((SECONDS + $2))
  until [ "$(rest /taskmanagers 2>/dev/null | "$VENV/bin/python" -c 'import json,sys; print(len(json.load(sys.stdin)["taskmanagers"]))' 2>/dev/null)" -ge "$1" ] 2>/dev/null; do
    (( SECONDS < deadline )) || { tail -n 40 "$FLINK_LOG_DIR"/*taskexecutor*.log >&2 || true; die "no $1 TaskManager(s) registered after ${2}s"; }
    sleep 0.5
  done
}

start() {
  # The daemons, and the Python workers they start, run in the cluster's own directory: a
  # worker runs `python -m` there and would import any flink_jobs/ found in its working
  # directory before the files shipped with the job (-pyfs).
  mkdir -p "$RUN_DIR" && cd "$RUN_DIR"
  if [ -n "$(pids_of standalonesession)" ]; then
    say "jobmanager already running (pid $(pids_of standalonesession | tr '\n' ' '), http://127.0.0.1:$REST_PORT)"
  else
    port_open "$REST_PORT" && die "port $REST_PORT is in use by a process this script did not start; set RECO_FLINK_REST_PORT"
    port_open "$RPC_PORT" && die "port $RPC_PORT is in use by a process this script did not start; set RECO_FLINK_RPC_PORT"
    write_conf
    "$FLINK_HOME/bin/jobmanager.sh" start >/dev/null
    local deadline=$((SECONDS + 60))
    until rest /overview >/dev/null 2>&1; do
      (( SECONDS < deadline )) || { tail -n 40 "$FLINK_LOG_DIR"/*standalonesession*.log >&2 || true; die "jobmanager not up after 60s"; }
      sleep 0.5
    done
    say "jobmanager up (pid $(pids_of standalonesession | tr '\n' ' '), http://127.0.0.1:$REST_PORT; Prometheus metrics on ports $PROM_PORTS)"
  fi
  start_taskmanager
}

start_taskmanager() {  # those missing of the cluster's (its conf's workers file)
  mkdir -p "$RUN_DIR" && cd "$RUN_DIR"   # see start()
  [ -f "$FLINK_CONF_DIR/workers" ] || die "no cluster configured in $FLINK_CONF_DIR: run cluster.sh start"
  local wanted missing
  wanted="$(grep -c . "$FLINK_CONF_DIR/workers")"
  missing=$((wanted - $(pids_of taskexecutor | wc -l)))
  if (( missing <= 0 )); then say "taskmanager(s) already running (pid $(pids_of taskexecutor | tr '\n' ' '))"; return 0; fi
  for _ in $(seq 1 "$missing"); do "$FLINK_HOME/bin/taskmanager.sh" start >/dev/null; done
  wait_for_taskmanagers "$wanted" 90
  say "taskmanager(s) up (pids $(pids_of taskexecutor | tr '\n' ' '))"
}

stop() {
  local p
  for p in $(pids_of taskexecutor) $(pids_of standalonesession); do
    kill -TERM "$p" 2>/dev/null || true
    for _ in $(seq 1 100); do kill -0 "$p" 2>/dev/null || break; sleep 0.2; done
    kill -0 "$p" 2>/dev/null && kill -KILL "$p"
    say "stopped pid $p"
  done
  rm -f "$RUN_DIR"/flink-*.pid
  # Python workers outlive a TaskManager that was killed or crashed: they are re-parented
  # to init. End those orphans of this project's PyFlink and everything they started (a
  # worker's own children would otherwise be orphaned in turn), and only those.
  local orphans
  orphans="$(ps -eo pid=,ppid=,args= | awk -v home="$FLINK_HOME" -v py="$VENV/bin/python" \
    '$2 == 1 && (index($0, home "/bin/pyflink-udf-runner.sh") || index($0, py " -m pyflink.fn_execution.beam.beam_boot")) {print $1}')"
  [ -n "$orphans" ] || return 0
  with_descendants $orphans | while read -r p; do kill "$p" 2>/dev/null && say "stopped orphaned Python worker process $p"; done
}

with_descendants() {  # PID... -> those pids and every process below them, one a line
  ps -eo pid=,ppid= | awk -v roots="$*" '
    BEGIN { n = split(roots, r); for (i = 1; i <= n; i++) keep[r[i]] = 1 }
    { parent[$1] = $2 }
    END { do { grew = 0; for (p in parent) if (!(p in keep) && (parent[p] in keep)) { keep[p] = 1; grew = 1 } } while (grew)
          for (p in keep) print p }'
}

kill_taskmanager() {  # what a crashed machine does: no shutdown, Python workers included
  local tms all
  tms="$(pids_of taskexecutor | tr '\n' ' ')"
  [ -n "$tms" ] || die "no TaskManager running"
  all="$(with_descendants $tms | tr '\n' ' ')"
  kill -KILL $all 2>/dev/null || true
  say "kill -9 TaskManager(s) ${tms% } and $(( $(wc -w <<<"$all") - $(wc -w <<<"$tms") )) process(es) below them"
}

# A secret given as a flag would sit on the flink run command line, which every user of the
# machine can read (ps): refused. The job reads the Redis URL from RECO_REDIS_URL or
# --redis-url-file (the Schema Registry's likewise: RECO_SCHEMA_REGISTRY_URL,
# --schema-registry-url-file), credentials of Kafka from --kafka-properties-file (or
# RECO_KAFKA_PROPERTIES_FILE); flink run's Python client inherits this environment.
is_secret_flag() (  # flag value -> status 0 when the value is a secret (a subshell: nocasematch stays in it)
  v="$2"
  shopt -s nocasematch
  case "$1" in
    --redis-url|--schema-registry-url)
      if [[ "$v" == *://*@* ]]; then userinfo="${v#*://}"; userinfo="${userinfo%@*}"; [[ "$userinfo" == *:* ]] && return 0; fi
      [[ "$v" =~ [?\&][^=\&]*(password|passwd|secret|token)[^=\&]*= ]] && return 0 ;;
    --kafka-property)  # the same keys as flink_jobs/sensitive.py is_secret_property
      [[ "${v%%=*}" =~ password|secret|jaas|token|credential|^ssl\.keystore\.key$|certificate ]] && return 0 ;;
  esac
  return 1
)

# The flink client's settings. Another cluster (RECO_FLINK_JOBMANAGER) gets the distribution's
# stock client conf, or RECO_FLINK_CONF_DIR: this cluster's conf would hand the job its
# checkpoint directory and python.executable, paths of this machine.
client_env() {
  if [ -n "${RECO_FLINK_JOBMANAGER:-}${RECO_FLINK_CONF_DIR:-}" ]; then
    export FLINK_CONF_DIR="${RECO_FLINK_CONF_DIR:-$FLINK_HOME/conf}" FLINK_LIB_DIR="$FLINK_HOME/lib"
    [ -f "$FLINK_CONF_DIR/config.yaml" ] || die "no config.yaml in RECO_FLINK_CONF_DIR=$FLINK_CONF_DIR"
  fi
}

flink_cli() {  # ACTION [ARGS]: flink ACTION at JOBMANAGER
  [ $# -gt 0 ] || die "usage: cluster.sh flink ACTION [ARGS] (list, stop --savepointPath DIR JOB_ID, cancel, savepoint, ...)"
  local action="$1"; shift
  client_env
  mkdir -p "$FLINK_LOG_DIR"
  case "$action" in
    list|stop|cancel|savepoint) exec "$FLINK_HOME/bin/flink" "$action" -m "$JOBMANAGER" "$@" ;;
    *) exec "$FLINK_HOME/bin/flink" "$action" "$@" ;;
  esac
}

submit() {  # [--from CHECKPOINT_OR_SAVEPOINT] [--py FILE] [main.py flags]
  local jar from=() py=flink_jobs/main.py args=() flag value inline var
  if [ "${1:-}" = "--from" ]; then from=(-s "$2"); shift 2; fi
  if [ "${1:-}" = "--py" ]; then py="$2"; shift 2; fi
  while [ $# -gt 0 ]; do
    flag="$1"; shift; inline=0
    if [[ "$flag" == --*=* ]]; then value="${flag#*=}"; flag="${flag%%=*}"; inline=1; fi
    case "$flag" in
      --redis-url|--kafka-property|--redis-url-file|--kafka-properties-file|--config|--schema-registry-url|--schema-registry-url-file)
        if [ $inline = 0 ]; then [ $# -gt 0 ] || die "$flag needs a value"; value="$1"; shift; fi
        if is_secret_flag "$flag" "$value"; then
          die "$flag carries a secret, which would be on the flink run command line (visible to every user): put it in the environment (RECO_REDIS_URL, RECO_SCHEMA_REGISTRY_URL) or a file (--redis-url-file FILE, --kafka-properties-file FILE, --schema-registry-url-file FILE)"
        fi
        # files named relative to where this script was called from (it runs flink from $ROOT)
        if [[ "$flag" == *-file || "$flag" == --config ]] && [ -e "$value" ]; then value="$(realpath -- "$value")"; fi
        args+=("$flag" "$value") ;;
      *) if [ $inline = 1 ]; then args+=("$flag=$value"); else args+=("$flag"); fi ;;
    esac
  done
  for var in RECO_REDIS_URL_FILE RECO_KAFKA_PROPERTIES_FILE RECO_SCHEMA_REGISTRY_URL_FILE; do
    if [ -n "${!var:-}" ] && [ -e "${!var}" ]; then export "$var=$(realpath -- "${!var}")"; fi
  done
  local jars=("$RECO_JARS_DIR"/flink/flink-sql-connector-kafka-*.jar)   # the pattern itself when none
  [ -e "${jars[0]}" ] || die "no Kafka connector jar in $RECO_JARS_DIR/flink: run deploy/setup.sh"
  jar="${jars[0]}"
  # The Python workers' interpreter: the archive's, extracted by each TaskManager (its root
  # becomes venv/ in the worker's directory), or else this machine's .venv, which only a
  # TaskManager of this machine has. The client (this machine) runs .venv's python; with an
  # archive it is found on PATH, as -pyclientexec would make the client extract the archive too.
  local python_env=(-pyexec "$VENV/bin/python" -pyclientexec "$VENV/bin/python") archive
  local files=(-pyfs flink_jobs,udfs,schemas)
  if [ -n "${RECO_FLINK_ARCHIVE:-}" ]; then
    archive="$(realpath -- "$RECO_FLINK_ARCHIVE" 2>/dev/null)" && [ -f "$archive" ] \
      || die "RECO_FLINK_ARCHIVE=$RECO_FLINK_ARCHIVE: no such file (deploy/package.sh builds dist/reco-env.tar.gz)"
    [[ "$archive" =~ \.(tar\.gz|tgz|zip)$ ]] || die "RECO_FLINK_ARCHIVE=$archive: not a .tar.gz, .tgz or .zip"
    python_env=(-pyarch "$archive#venv" -pyexec venv/bin/python)
    # flink run puts each directory given to -pyfs itself on the workers' PYTHONPATH, so
    # `import flink_jobs` needs a directory that holds the packages (and schemas/ beside
    # them, where flink_jobs/codec.py looks). A TaskManager of this machine imports them from
    # .venv's editable install instead; one elsewhere has only what the job ships.
    mkdir -p "$RUN_DIR"
    STAGE="$(mktemp -d "$RUN_DIR/job.XXXXXX")"
    trap 'rm -rf "$STAGE"' EXIT   # flink run -d has uploaded it when it returns
    cp -r "$ROOT/flink_jobs" "$ROOT/udfs" "$ROOT/schemas" "$STAGE/"
    find "$STAGE" -name __pycache__ -prune -exec rm -rf {} +
    files=(-pyfs "$STAGE")
    [ "$py" != flink_jobs/main.py ] || py="$STAGE/flink_jobs/main.py"
  fi
  client_env
  cd "$ROOT"
  # The jars go with the job: the connector here (-j), the connector and the timer fix again
  # through pipeline.jars (flink_jobs/main.py, internals.install_timer_fix); none in the cluster's lib/.
  local cmd=("$FLINK_HOME/bin/flink" run -m "$JOBMANAGER" -d "${from[@]}"
    -py "$py" "${files[@]}" "${python_env[@]}" -j "$jar" "${args[@]}")
  if [ -n "${RECO_FLINK_DRY_RUN:-}" ]; then printf '%q ' "${cmd[@]}"; echo; return 0; fi  # the command, not run
  mkdir -p "$FLINK_LOG_DIR"
  "${cmd[@]}"
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  start-taskmanager) start_taskmanager ;;
  kill-taskmanager) kill_taskmanager ;;
  status)
    if rest /overview >/dev/null 2>&1; then say "up: $(rest /overview)"; else say "DOWN"; exit 1; fi ;;
  submit) shift; submit "$@" ;;
  flink) shift; flink_cli "$@" ;;
  *) sed -n '2,27p' "$0" | sed 's/^# \{0,1\}//'; exit 2 ;;
esac
