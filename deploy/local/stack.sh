#!/usr/bin/env bash
# The local stack on loopback: a single-node KRaft Kafka broker (Apache Kafka jars from
# Maven Central) and Redis (Debian's redis-server), each in its own process that this
# script starts, checks and stops by process id.
#
#   deploy/local/stack.sh start [kafka|redis|all]   idempotent; creates the topics
#   deploy/local/stack.sh stop  [kafka|redis|all]   leaves no process of ours behind
#   deploy/local/stack.sh status                    exit 0 only when all are healthy
#   deploy/local/stack.sh reset                     stop, then delete all data
#
# Settings (environment): RECO_KAFKA_PORT (9092), RECO_KAFKA_CONTROLLER_PORT (9093),
# RECO_REDIS_PORT (6379), RECO_RUN_DIR (.run: data and logs), RECO_JARS_DIR (.cache/jars),
# RECO_KAFKA_HEAP (512m), RECO_EVENT_PARTITIONS (4), RECO_REDIS_ACLFILE (none: Redis ACL users,
# loaded at every start, so they survive a restart; its `default` user line is yours to write).
# Opt-in SASL: RECO_KAFKA_SASL_PORT adds a SASL_PLAINTEXT listener (SCRAM-SHA-512) on that
# port, user RECO_KAFKA_SASL_USER (reco), password from RECO_KAFKA_SASL_PASSWORD_FILE or
# generated once into $RECO_RUN_DIR/kafka/sasl-password; clients (the job, the tools) find
# their properties in $RECO_RUN_DIR/kafka/client-sasl.properties. PLAINTEXT stays as it was.
# Opt-in TLS: RECO_KAFKA_SSL_PORT adds an SSL listener on that port, its certificates made once
# with keytool into $RECO_RUN_DIR/kafka/tls (a CA of this stack; the broker's certificate for
# IP 127.0.0.1 and DNS localhost; PKCS12 stores with a generated password); clients find their
# properties (the CA as a PEM truststore) in $RECO_RUN_DIR/kafka/client-ssl.properties.
# RECO_KAFKA_SSL_PROTOCOLS (TLSv1.2): the listener's TLS versions. Not TLSv1.3 by default: the
# tools' client (kafka-python 2.3) drops a TLS 1.3 connection when the broker's session ticket
# arrives while no request is in flight (KafkaConnectionError, a quarter of connections or more).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
RUN_DIR="$(realpath -m "${RECO_RUN_DIR:-$ROOT/.run}")"
JARS_DIR="$(realpath -m "${RECO_JARS_DIR:-$ROOT/.cache/jars}")"
KAFKA_PORT="${RECO_KAFKA_PORT:-9092}"
CONTROLLER_PORT="${RECO_KAFKA_CONTROLLER_PORT:-9093}"
REDIS_PORT="${RECO_REDIS_PORT:-6379}"
SASL_PORT="${RECO_KAFKA_SASL_PORT:-}"     # empty: no SASL listener
SASL_USER="${RECO_KAFKA_SASL_USER:-reco}"
SSL_PORT="${RECO_KAFKA_SSL_PORT:-}"       # empty: no SSL listener
TLS_DIR="$RUN_DIR/kafka/tls"
SSL_PROTOCOLS="${RECO_KAFKA_SSL_PROTOCOLS:-TLSv1.2}"
KAFKA_HEAP="${RECO_KAFKA_HEAP:-512m}"
PY="$ROOT/.venv/bin/python"

say() { printf '[stack] %s\n' "$*"; }
die() { printf '[stack] ERROR: %s\n' "$*" >&2; exit 1; }

for p in KAFKA_PORT CONTROLLER_PORT REDIS_PORT ${SASL_PORT:+SASL_PORT} ${SSL_PORT:+SSL_PORT}; do
  [[ "${!p}" =~ ^[0-9]+$ ]] && (( ${!p} > 0 && ${!p} < 65536 )) || die "RECO_$p=${!p} is not a port number"
done
[ -z "$SSL_PORT" ] || [[ "$SSL_PROTOCOLS" =~ ^TLSv1\.[23](,TLSv1\.[23])?$ ]] \
  || die "RECO_KAFKA_SSL_PROTOCOLS=$SSL_PROTOCOLS: TLSv1.2, TLSv1.3 or both, comma-separated"

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# pid of a service we started, if that process is still alive and still ours: the pid of
# one that died may be in use by another process since.
our_pid() {
  local f="$RUN_DIR/$1/pid" pid args
  [ -f "$f" ] || return 1
  pid="$(cat "$f")"
  args="$( { tr '\0' ' ' < "/proc/$pid/cmdline"; } 2>/dev/null)" || return 1
  case "$1" in
    redis) [[ "$args" == redis-server*":$REDIS_PORT"* ]] ;;   # redis-server rewrites its title
    *) [[ "$args" == *"$RUN_DIR/$1/"* ]] ;;
  esac && echo "$pid"
}

# Refuse to start on a port someone else holds: that would hang or talk to a stranger.
claim_port() {  # name port env-var
  if port_open "$2"; then
    die "$1: port $2 on 127.0.0.1 is already in use by a process this script did not start; stop it or set $3 to a free port"
  fi
}

wait_until() {  # seconds name pid command...
  local deadline=$((SECONDS + $1)) name="$2" pid="$3"; shift 3
  until "$@"; do
    kill -0 "$pid" 2>/dev/null || { tail -n 30 "$RUN_DIR/$name/$name.log" >&2; die "$name exited during start-up (log above, whole log in $RUN_DIR/$name/$name.log)"; }
    (( SECONDS < deadline )) || { tail -n 30 "$RUN_DIR/$name/$name.log" >&2; die "$name not ready after ${1}s"; }
    sleep 0.3
  done
}

start_redis() {
  if pid="$(our_pid redis)"; then say "redis already running (pid $pid, port $REDIS_PORT)"; return; fi
  command -v redis-server >/dev/null || die "redis-server not found: run deploy/setup.sh"
  claim_port redis "$REDIS_PORT" RECO_REDIS_PORT
  mkdir -p "$RUN_DIR/redis"
  # No persistence, on purpose: a restart loses every key, which reco-refill repairs (the chaos
  # test does exactly that). A deployment runs Redis with AOF (docs/operations.md).
  local acl=()
  if [ -n "${RECO_REDIS_ACLFILE:-}" ]; then
    [ -r "$RECO_REDIS_ACLFILE" ] || die "RECO_REDIS_ACLFILE=$RECO_REDIS_ACLFILE is not a readable file"
    acl=(--aclfile "$(realpath "$RECO_REDIS_ACLFILE")")
  fi
  nohup redis-server --bind 127.0.0.1 --port "$REDIS_PORT" --dir "$RUN_DIR/redis" \
    --save "" --appendonly no --daemonize no --protected-mode yes "${acl[@]}" \
    >"$RUN_DIR/redis/redis.log" 2>&1 &
  echo $! >"$RUN_DIR/redis/pid"
  wait_until 20 redis $! redis_ready
  say "redis up on 127.0.0.1:$REDIS_PORT (pid $(cat "$RUN_DIR/redis/pid"))"
}

redis_ready() { [ "$(redis-cli -p "$REDIS_PORT" ping 2>/dev/null)" = "PONG" ]; }

kafka_config() {
  cat <<CONF
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:$CONTROLLER_PORT
listeners=PLAINTEXT://127.0.0.1:$KAFKA_PORT,CONTROLLER://127.0.0.1:$CONTROLLER_PORT${SASL_PORT:+,SASL_PLAINTEXT://127.0.0.1:$SASL_PORT}${SSL_PORT:+,SSL://127.0.0.1:$SSL_PORT}
advertised.listeners=PLAINTEXT://127.0.0.1:$KAFKA_PORT${SASL_PORT:+,SASL_PLAINTEXT://127.0.0.1:$SASL_PORT}${SSL_PORT:+,SSL://127.0.0.1:$SSL_PORT}
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT${SASL_PORT:+,SASL_PLAINTEXT:SASL_PLAINTEXT}${SSL_PORT:+,SSL:SSL}
log.dirs=$RUN_DIR/kafka/data
num.partitions=1
offsets.topic.replication.factor=1
offsets.topic.num.partitions=4
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
transaction.state.log.num.partitions=4
group.initial.rebalance.delay.ms=0
# Upper bound for a producer's transaction.timeout.ms; the Flink sink's must stay below it.
transaction.max.timeout.ms=900000
auto.create.topics.enable=false
log.retention.hours=-1
CONF
  if [ -n "$SASL_PORT" ]; then
    cat <<CONF
# SASL_PLAINTEXT listener (RECO_KAFKA_SASL_PORT): SCRAM-SHA-512, users from the cluster metadata
sasl.enabled.mechanisms=SCRAM-SHA-512
listener.name.sasl_plaintext.sasl.enabled.mechanisms=SCRAM-SHA-512
listener.name.sasl_plaintext.scram-sha-512.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required;
CONF
  fi
  if [ -n "$SSL_PORT" ]; then
    local pw
    pw="$(cat "$TLS_DIR/store-password")"
    cat <<CONF
# SSL listener (RECO_KAFKA_SSL_PORT): the broker's key and certificate from $TLS_DIR (made by
# this script); clients are not asked for certificates. This file holds the stores' password: mode 600.
listener.name.ssl.ssl.keystore.type=PKCS12
listener.name.ssl.ssl.keystore.location=$TLS_DIR/broker.p12
listener.name.ssl.ssl.keystore.password=$pw
listener.name.ssl.ssl.key.password=$pw
listener.name.ssl.ssl.truststore.type=PKCS12
listener.name.ssl.ssl.truststore.location=$TLS_DIR/truststore.p12
listener.name.ssl.ssl.truststore.password=$pw
listener.name.ssl.ssl.client.auth=none
listener.name.ssl.ssl.enabled.protocols=$SSL_PROTOCOLS
CONF
  fi
}

# The SSL listener's certificates, made once with keytool (part of the JDK the broker runs on):
# a CA of this stack, the broker's key and a certificate it signs for IP 127.0.0.1 and DNS
# localhost (so clients keep hostname verification), PKCS12 stores for the broker and the CA
# in PEM for clients. One generated password for the stores, passed to keytool as a file
# (-storepass:file), never as an argument. Made in a scratch folder, then moved in whole.
ensure_tls() {
  local need
  for need in broker.p12 truststore.p12 ca.pem store-password; do [ -s "$TLS_DIR/$need" ] || break; need=; done
  [ -n "$need" ] || return 0
  command -v keytool >/dev/null || die "keytool not found: it comes with Java 17, which the broker needs"
  local new="$TLS_DIR.new" log="$RUN_DIR/kafka/keytool.log"
  rm -rf "$new" "$TLS_DIR"
  (umask 077; mkdir -p "$new"
   python3 -c 'import secrets; print(secrets.token_hex(16))' >"$new/store-password")
  say "making the SSL listener's CA and broker certificate (keytool) in $TLS_DIR"
  local store=(-storetype PKCS12 -storepass:file "$new/store-password")
  # each step chained with &&: `set -e` does not act inside a command whose status is tested
  ( umask 077; cd "$new" \
    && keytool -genkeypair -alias ca -keyalg RSA -keysize 2048 -validity 3650 -dname "CN=reco local stack CA" \
         -ext bc:c -ext KU=keyCertSign,cRLSign -keystore ca.p12 "${store[@]}" \
    && keytool -exportcert -rfc -alias ca -keystore ca.p12 "${store[@]}" -file ca.pem \
    && keytool -genkeypair -alias broker -keyalg RSA -keysize 2048 -validity 3650 -dname "CN=localhost" \
         -keystore broker.p12 "${store[@]}" \
    && keytool -certreq -alias broker -keystore broker.p12 "${store[@]}" -file broker.csr \
    && keytool -gencert -alias ca -keystore ca.p12 "${store[@]}" -infile broker.csr -outfile broker.pem -rfc \
         -validity 3650 -ext SAN=IP:127.0.0.1,DNS:localhost -ext KU=digitalSignature,keyEncipherment -ext EKU=serverAuth \
    && cat broker.pem ca.pem >broker-chain.pem \
    && keytool -importcert -noprompt -alias broker -file broker-chain.pem -keystore broker.p12 "${store[@]}" \
    && keytool -importcert -noprompt -alias ca -file ca.pem -keystore truststore.p12 "${store[@]}" \
    && rm -f broker.csr broker-chain.pem
  ) >"$log" 2>&1 || { cat "$log" >&2; rm -rf "$new"; die "making the SSL listener's certificates failed"; }
  mv "$new" "$TLS_DIR"
}

# The SASL user's password, never on a command line: from RECO_KAFKA_SASL_PASSWORD_FILE, or
# generated once (readable by this user only) and kept with the broker's data.
sasl_password() {
  local f="${RECO_KAFKA_SASL_PASSWORD_FILE:-$RUN_DIR/kafka/sasl-password}" pw
  if [ ! -s "$f" ]; then
    [ -z "${RECO_KAFKA_SASL_PASSWORD_FILE:-}" ] || die "RECO_KAFKA_SASL_PASSWORD_FILE=$f is missing or empty"
    (umask 077; python3 -c 'import secrets; print(secrets.token_hex(16))' >"$f")
  fi
  pw="$(head -n 1 "$f")"
  [[ "$pw" =~ ^[A-Za-z0-9._~-]{8,}$ ]] || die "the SASL password in $f must be 8 or more of A-Z a-z 0-9 . _ ~ - (SCRAM tools parse it)"
  printf '%s' "$pw"
}

# A Kafka tool run by the JVM with its arguments in a file (java @argfile), so that a
# credential among them never shows on a command line.
kafka_tool() {  # class args...
  local argfile rc=0
  argfile="$(umask 077; mktemp "$RUN_DIR/kafka/args.XXXXXX")"
  printf '"%s"\n' "$@" >"$argfile"
  "${java[@]}" "@$argfile" || rc=$?
  rm -f "$argfile"
  return $rc
}

# Clients' properties for the SASL listener (the job: --kafka-properties-file; the tools too).
write_sasl_client_properties() {  # password
  (umask 077; cat >"$RUN_DIR/kafka/client-sasl.properties" <<PROPS
# written by deploy/local/stack.sh for the listener on 127.0.0.1:$SASL_PORT
security.protocol=SASL_PLAINTEXT
sasl.mechanism=SCRAM-SHA-512
sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required username="$SASL_USER" password="$1";
PROPS
  )
}

# Clients' properties for the SSL listener: the CA as a PEM truststore (the Java client, in the
# job, and kafka-python, in the tools, both read PEM), hostname verification kept.
write_ssl_client_properties() {
  (umask 077; cat >"$RUN_DIR/kafka/client-ssl.properties" <<PROPS
# written by deploy/local/stack.sh for the listener on 127.0.0.1:$SSL_PORT
security.protocol=SSL
ssl.truststore.type=PEM
ssl.truststore.location=$TLS_DIR/ca.pem
ssl.endpoint.identification.algorithm=https
PROPS
  )
}

start_kafka() {
  if pid="$(our_pid kafka)"; then say "kafka already running (pid $pid, port $KAFKA_PORT)"; return; fi
  command -v java >/dev/null || die "java not found: the broker needs Java 17"
  ls "$JARS_DIR"/kafka/kafka_2.13-*.jar >/dev/null 2>&1 || die "no Kafka jars in $JARS_DIR/kafka: run deploy/setup.sh"
  claim_port kafka "$KAFKA_PORT" RECO_KAFKA_PORT
  claim_port kafka-controller "$CONTROLLER_PORT" RECO_KAFKA_CONTROLLER_PORT
  [ -z "$SASL_PORT" ] || claim_port kafka-sasl "$SASL_PORT" RECO_KAFKA_SASL_PORT
  [ -z "$SSL_PORT" ] || claim_port kafka-ssl "$SSL_PORT" RECO_KAFKA_SSL_PORT
  mkdir -p "$RUN_DIR/kafka/data"
  [ -z "$SSL_PORT" ] || ensure_tls
  # readable by this user only: with SSL it holds the stores' password
  (umask 077; kafka_config >"$RUN_DIR/kafka/server.properties.new")
  mv -f "$RUN_DIR/kafka/server.properties.new" "$RUN_DIR/kafka/server.properties"
  local java=(java "-Xms128m" "-Xmx$KAFKA_HEAP" -XX:+UseG1GC -Djava.awt.headless=true
    "-Dlog4j2.configurationFile=$ROOT/deploy/local/kafka-log4j2.yaml" -cp "$JARS_DIR/kafka/*")
  local scram=() password="" marker="$RUN_DIR/kafka/sasl-user"
  if [ -n "$SASL_PORT" ]; then
    password="$(sasl_password)"
    scram=(--add-scram "SCRAM-SHA-512=[name=$SASL_USER,password=$password]")
  fi
  if [ ! -f "$RUN_DIR/kafka/data/meta.properties" ]; then
    local cluster_id
    # base64url of a random UUID, as Kafka's own ids, and like them never starting with "-":
    # the storage tool would read such an id as an option (1 start in 64 failed that way)
    cluster_id="-"
    while [ "${cluster_id:0:1}" = "-" ]; do
      cluster_id="$(python3 -c 'import base64,uuid; print(base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("="))')"
    done
    say "formatting KRaft storage (cluster $cluster_id)${SASL_PORT:+ with SCRAM user $SASL_USER}"
    kafka_tool kafka.tools.StorageTool format -t "$cluster_id" \
      -c "$RUN_DIR/kafka/server.properties" "${scram[@]}" >"$RUN_DIR/kafka/format.log" 2>&1 \
      || { cat "$RUN_DIR/kafka/format.log" >&2; die "formatting Kafka storage failed"; }
    if [ -n "$SASL_PORT" ]; then (umask 077; sasl_marker "$password" >"$marker"); else rm -f "$marker"; fi
  fi
  nohup "${java[@]}" kafka.Kafka "$RUN_DIR/kafka/server.properties" >"$RUN_DIR/kafka/kafka.log" 2>&1 &
  echo $! >"$RUN_DIR/kafka/pid"
  wait_until 90 kafka $! port_open "$KAFKA_PORT"
  if [ -n "$SASL_PORT" ]; then
    wait_until 30 kafka "$(cat "$RUN_DIR/kafka/pid")" port_open "$SASL_PORT"
    # data formatted before SASL was asked for, or another password: set the user's credential
    if [ "$(cat "$marker" 2>/dev/null)" != "$(sasl_marker "$password")" ]; then
      kafka_tool kafka.admin.ConfigCommand --bootstrap-server "127.0.0.1:$KAFKA_PORT" --alter \
        --entity-type users --entity-name "$SASL_USER" --add-config "SCRAM-SHA-512=[password=$password]" \
        >"$RUN_DIR/kafka/scram.log" 2>&1 || { cat "$RUN_DIR/kafka/scram.log" >&2; die "creating SCRAM user $SASL_USER failed"; }
      (umask 077; sasl_marker "$password" >"$marker")
      say "SCRAM user $SASL_USER set"
    fi
    write_sasl_client_properties "$password"
  fi
  if [ -n "$SSL_PORT" ]; then
    wait_until 30 kafka "$(cat "$RUN_DIR/kafka/pid")" port_open "$SSL_PORT"
    write_ssl_client_properties
  fi
  say "kafka up on 127.0.0.1:$KAFKA_PORT (pid $(cat "$RUN_DIR/kafka/pid"))"
  [ -z "$SASL_PORT" ] || say "kafka SASL_PLAINTEXT (SCRAM-SHA-512, user $SASL_USER) on 127.0.0.1:$SASL_PORT; client properties: $RUN_DIR/kafka/client-sasl.properties"
  [ -z "$SSL_PORT" ] || say "kafka SSL on 127.0.0.1:$SSL_PORT (CA $TLS_DIR/ca.pem); client properties: $RUN_DIR/kafka/client-ssl.properties"
}

sasl_marker() { printf '%s %s' "$SASL_USER" "$(printf '%s' "$1" | sha256sum | cut -c1-16)"; }  # user and a hash of the password

ensure_topics() {  # through the PLAINTEXT listener: a client properties setting is not for it
  env -u RECO_KAFKA_PROPERTIES_FILE -u RECO_KAFKA_PROPERTIES "$PY" -m reco_tools.topics --bootstrap "127.0.0.1:$KAFKA_PORT" \
    --event-partitions "${RECO_EVENT_PARTITIONS:-4}" || die "creating topics failed"
}

stop_one() {
  local name="$1" pid
  if ! pid="$(our_pid "$name")"; then rm -f "$RUN_DIR/$name/pid"; say "$name not running"; return; fi
  kill -TERM "$pid"
  for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
  if kill -0 "$pid" 2>/dev/null; then say "$name did not stop in 20s; killing pid $pid"; kill -KILL "$pid"; fi
  while kill -0 "$pid" 2>/dev/null; do sleep 0.1; done
  rm -f "$RUN_DIR/$name/pid"
  say "$name stopped (pid $pid)"
}

status() {
  local ok=0 pid
  if pid="$(our_pid kafka)" && port_open "$KAFKA_PORT" && { [ -z "$SASL_PORT" ] || port_open "$SASL_PORT"; } \
      && { [ -z "$SSL_PORT" ] || port_open "$SSL_PORT"; }; then
    say "kafka  up    pid $pid  127.0.0.1:$KAFKA_PORT${SASL_PORT:+ (SASL_PLAINTEXT 127.0.0.1:$SASL_PORT)}${SSL_PORT:+ (SSL 127.0.0.1:$SSL_PORT)}"
  else say "kafka  DOWN"; ok=1; fi
  if pid="$(our_pid redis)" && redis_ready; then say "redis  up    pid $pid  127.0.0.1:$REDIS_PORT"
  else say "redis  DOWN"; ok=1; fi
  return $ok
}

what="${2:-all}"
case "$what" in kafka|redis|all) ;; *) die "unknown service '$what' (kafka, redis or all)";; esac
wants() { [[ "$what" == all || "$what" == "$1" ]]; }
case "${1:-}" in
  start)
    if wants redis; then start_redis; fi
    if wants kafka; then start_kafka; ensure_topics; fi
    ;;
  stop)
    if wants kafka; then stop_one kafka; fi
    if wants redis; then stop_one redis; fi
    ;;
  status) status ;;
  reset) stop_one kafka; stop_one redis; rm -rf "$RUN_DIR/kafka" "$RUN_DIR/redis"; say "data deleted" ;;
  *) sed -n '2,25p' "$0" | sed 's/^# \{0,1\}//'; exit 2 ;;
esac
