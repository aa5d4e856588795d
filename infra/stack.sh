#!/usr/bin/env bash
# Local infrastructure stack without Docker: Kafka (KRaft, one node), Apicurio Registry
# (Confluent-compatible schema registry API) and Redis, all on 127.0.0.1.
#
#   bash infra/stack.sh up       start what is not running, wait until ready (idempotent)
#   bash infra/stack.sh down     stop Kafka and the registry (Redis belongs to the machine)
#   bash infra/stack.sh status   print each service; exit 0 if all are up, 1 otherwise
#   bash infra/stack.sh reset    down, then delete Kafka's data (next `up` formats anew)
#
# Jars come from Maven Central (through mvn) into a cache shared by all clones:
#   ${TAPIO_STACK_CACHE:-~/.cache/tapio-stack}/{kafka-<v>,apicurio-<v>}
# Runtime state (data, pid files, logs) lives in ${TAPIO_STACK_DIR:-<repo>/.stack}.
# See infra/README.md for versions, timings and gotchas.
set -euo pipefail

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO_ROOT=$(cd "$SCRIPT_DIR/.." && pwd)

KAFKA_VERSION=${TAPIO_KAFKA_VERSION:-4.1.1}
APICURIO_VERSION=${TAPIO_APICURIO_VERSION:-3.0.9}
CACHE_DIR=${TAPIO_STACK_CACHE:-$HOME/.cache/tapio-stack}
STATE_DIR=${TAPIO_STACK_DIR:-$REPO_ROOT/.stack}
HOST=127.0.0.1
KAFKA_PORT=${TAPIO_KAFKA_PORT:-9092}
CONTROLLER_PORT=${TAPIO_CONTROLLER_PORT:-9093}
REGISTRY_PORT=${TAPIO_REGISTRY_PORT:-8081}
REDIS_PORT=${TAPIO_REDIS_PORT:-6379}
KAFKA_HEAP=${TAPIO_KAFKA_HEAP:-512m}
REGISTRY_HEAP=${TAPIO_REGISTRY_HEAP:-384m}
READY_TIMEOUT=${TAPIO_STACK_TIMEOUT:-120} # seconds, per service
STOP_TIMEOUT=${TAPIO_STACK_STOP_TIMEOUT:-30} # seconds before SIGKILL

KAFKA_HOME="$CACHE_DIR/kafka-$KAFKA_VERSION"
APICURIO_HOME="$CACHE_DIR/apicurio-$APICURIO_VERSION"
RUN_DIR="$STATE_DIR/run"
LOG_DIR="$STATE_DIR/logs"
KAFKA_STATE="$STATE_DIR/kafka"
KAFKA_DATA="$KAFKA_STATE/data"
KAFKA_PROPS="$KAFKA_STATE/server.properties"
KAFKA_LOG="$LOG_DIR/kafka.log"
REGISTRY_LOG="$LOG_DIR/registry.log"
REGISTRY_URL="http://$HOST:$REGISTRY_PORT"
CCOMPAT_URL="$REGISTRY_URL/apis/ccompat/v7"
MARKER=.complete

JAVA=""
KAFKA_JVM=()

log() { printf '[stack] %s\n' "$*"; }
die() {
  printf '[stack] ERROR: %s\n' "$*" >&2
  exit 1
}
now_ms() { date +%s%3N; }
elapsed() { awk -v a="$1" -v b="$(now_ms)" 'BEGIN { printf "%.1fs", (b - a) / 1000 }'; }
rel() { # print a path relative to the repo when it is inside it
  case "$1" in
    "$REPO_ROOT"/*) printf '%s' "${1#"$REPO_ROOT"/}" ;;
    *) printf '%s' "$1" ;;
  esac
}

# ---------------------------------------------------------------- prerequisites

java_major() { # java_major <java binary> -> 17, 21, 25 ...
  local line v
  line=$("$1" -version 2>&1 | head -n 1) || return 1
  v=$(sed -E 's/.*version "([^"]+)".*/\1/' <<<"$line")
  v=${v#1.} # 1.8.0_x -> 8.0_x
  printf '%s' "${v%%[.+_-]*}"
}

require_java() {
  [[ -n "$JAVA" ]] && return 0
  local candidate major
  if [[ -n "${JAVA_HOME:-}" && -x "$JAVA_HOME/bin/java" ]]; then
    candidate="$JAVA_HOME/bin/java"
  else
    candidate=$(command -v java || true)
  fi
  [[ -n "$candidate" ]] ||
    die "java not found: Kafka and Apicurio need a JDK 17+ (Debian: apt-get install -y openjdk-17-jdk-headless, or set JAVA_HOME)"
  major=$(java_major "$candidate" || true)
  [[ "$major" =~ ^[0-9]+$ && "$major" -ge 17 ]] ||
    die "$candidate is Java ${major:-?}; Kafka $KAFKA_VERSION and Apicurio $APICURIO_VERSION need Java 17+ (apt-get install -y openjdk-17-jdk-headless, or point JAVA_HOME at a newer JDK)"
  JAVA=$candidate
}

run_mvn() { # run_mvn <what> <mvn args...>: quiet unless it fails
  local what=$1 out="$LOG_DIR/mvn.log"
  shift
  mkdir -p "$LOG_DIR"
  if ! mvn -q -B -Dstyle.color=never -f "$SCRIPT_DIR/pom.xml" "$@" >"$out" 2>&1; then
    sed -e 's/\x1b\[[0-9;]*m//g' "$out" | grep -v '^\[ERROR\] *$' | tail -n 20 >&2
    die "mvn could not resolve $what from Maven Central (output above, full log: $out)"
  fi
}

require_mvn() {
  command -v mvn >/dev/null 2>&1 ||
    die "mvn not found: it is needed once to fetch the jars from Maven Central into $CACHE_DIR (Debian: apt-get install -y maven)"
}

# ---------------------------------------------------------------- artifact cache

ensure_kafka_libs() {
  [[ -f "$KAFKA_HOME/$MARKER" ]] && return 0
  require_mvn
  log "resolving Kafka $KAFKA_VERSION from Maven Central into $KAFKA_HOME ..."
  rm -rf "$KAFKA_HOME"
  mkdir -p "$KAFKA_HOME"
  run_mvn "org.apache.kafka:kafka_2.13:$KAFKA_VERSION" dependency:copy-dependencies \
    -DincludeScope=runtime -Dkafka.version="$KAFKA_VERSION" -DoutputDirectory="$KAFKA_HOME/libs"
  [[ -f "$KAFKA_HOME/libs/kafka_2.13-$KAFKA_VERSION.jar" ]] ||
    die "kafka_2.13-$KAFKA_VERSION.jar missing from $KAFKA_HOME/libs after mvn"
  date -u +%FT%TZ >"$KAFKA_HOME/$MARKER"
}

ensure_apicurio() {
  [[ -f "$APICURIO_HOME/$MARKER" ]] && return 0
  require_mvn
  local tmp="$APICURIO_HOME.partial" gav="io.apicurio:apicurio-registry-app:$APICURIO_VERSION:tar.gz:all"
  log "resolving Apicurio Registry $APICURIO_VERSION ($gav) into $APICURIO_HOME ..."
  rm -rf "$tmp" "$APICURIO_HOME"
  mkdir -p "$tmp/download"
  run_mvn "$gav (3.0.9 is known to resolve)" dependency:copy -Dartifact="$gav" -DoutputDirectory="$tmp/download"
  tar -xzf "$tmp/download/apicurio-registry-app-$APICURIO_VERSION-all.tar.gz" -C "$tmp"
  rm -rf "$tmp/download"
  mv "$tmp" "$APICURIO_HOME"
  date -u +%FT%TZ >"$APICURIO_HOME/$MARKER"
}

# ---------------------------------------------------------------- process helpers

pid_file() { printf '%s/%s.pid' "$RUN_DIR" "$1"; }

# Prints the pid of service $1 if its pid file names a live process that is ours
# (its command line carries -Dtapio.stack.service=$1 and this state dir); removes stale pid files.
service_pid() {
  local f pid cmdline=""
  f=$(pid_file "$1")
  [[ -f "$f" ]] || return 1
  pid=$(<"$f")
  if [[ "$pid" =~ ^[0-9]+$ ]] && kill -0 "$pid" 2>/dev/null; then
    cmdline=$(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null || true)
    if [[ "$cmdline" == *" -Dtapio.stack.service=$1 -Dtapio.stack.dir=$STATE_DIR "* ]]; then
      printf '%s' "$pid"
      return 0
    fi
  fi
  rm -f "$f"
  return 1
}

port_open() { # port_open <port>
  (exec 3<>"/dev/tcp/$HOST/$1") 2>/dev/null
}

http_status() { # http_status <url> -> prints the HTTP status code, or 000
  if command -v curl >/dev/null 2>&1; then
    curl -s -o /dev/null -m 3 -w '%{http_code}' "$1" || true
  else
    local rest=${1#http://} hostport path
    hostport=${rest%%/*}
    path=/${rest#*/}
    ( # subshell: a failed exec redirection must not end the script
      exec 3<>"/dev/tcp/${hostport%:*}/${hostport##*:}" &&
        printf 'GET %s HTTP/1.0\r\nHost: %s\r\n\r\n' "$path" "$hostport" >&3 &&
        IFS=' ' read -r -t 3 _ code _ <&3 && printf '%s' "$code"
    ) 2>/dev/null || printf '000'
  fi
}

start_bg() { # start_bg <service> <log> <cmd...>: detached (own session), survives the shell
  local svc=$1 logf=$2
  shift 2
  if [[ -f "$logf" ]]; then mv -f "$logf" "$logf.1"; fi
  # 9>&-: do not hand the stack lock (see lock) to the long-lived child
  nohup setsid "$@" >"$logf" 2>&1 </dev/null 9>&- &
  printf '%s' "$!" >"$(pid_file "$svc")"
}

stop_service() { # stop_service <service> <label>
  local pid waited=0
  if ! pid=$(service_pid "$1"); then
    log "$2: not running"
    return 0
  fi
  log "$2: stopping (pid $pid) ..."
  kill -TERM "$pid" 2>/dev/null || true
  while kill -0 "$pid" 2>/dev/null; do
    if ((waited >= STOP_TIMEOUT * 10)); then
      log "$2: still alive after ${STOP_TIMEOUT}s, sending SIGKILL"
      kill -KILL "$pid" 2>/dev/null || true
      sleep 0.5
      break
    fi
    sleep 0.1
    waited=$((waited + 1))
  done
  rm -f "$(pid_file "$1")"
  log "$2: stopped"
}

fail_with_log() { # fail_with_log <label> <log> <message>
  printf '[stack] ERROR: %s: %s\n' "$1" "$3" >&2
  if [[ -f "$2" ]]; then
    printf '[stack] last 40 lines of %s:\n' "$2" >&2
    tail -n 40 "$2" >&2
  fi
  exit 1
}

# ---------------------------------------------------------------- Kafka

write_kafka_props() {
  mkdir -p "$KAFKA_STATE"
  cat >"$KAFKA_PROPS" <<EOF
# Generated by infra/stack.sh on every start; edit the script, not this file.
process.roles=broker,controller
node.id=1
controller.quorum.bootstrap.servers=$HOST:$CONTROLLER_PORT
listeners=PLAINTEXT://$HOST:$KAFKA_PORT,CONTROLLER://$HOST:$CONTROLLER_PORT
advertised.listeners=PLAINTEXT://$HOST:$KAFKA_PORT
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT
log.dirs=$KAFKA_DATA
num.partitions=1
default.replication.factor=1
min.insync.replicas=1
offsets.topic.replication.factor=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
group.initial.rebalance.delay.ms=0
auto.create.topics.enable=false
delete.topic.enable=true
EOF
}

kafka_jvm() { # the JVM command line, without the main class
  KAFKA_JVM=("$JAVA" -Xmx"$KAFKA_HEAP" -Xms"$KAFKA_HEAP" -XX:+UseG1GC -XX:MaxGCPauseMillis=20
    -XX:InitiatingHeapOccupancyPercent=35 -XX:+ExplicitGCInvokesConcurrent -Djava.awt.headless=true
    -Dtapio.stack.service=kafka -Dtapio.stack.dir="$STATE_DIR"
    -Dlog4j2.configurationFile="$SCRIPT_DIR/kafka/log4j2.xml"
    -cp "$KAFKA_HOME/libs/*")
}

format_kafka_once() {
  [[ -f "$KAFKA_DATA/meta.properties" ]] && return 0
  local cid_file="$KAFKA_STATE/cluster.id" cid
  if [[ ! -s "$cid_file" ]]; then
    # 16 random bytes, base64url without padding: 22 characters
    head -c 16 /dev/urandom | base64 | tr '+/' '-_' | tr -d '=\n' >"$cid_file"
  fi
  cid=$(<"$cid_file")
  rm -rf "$KAFKA_DATA"
  log "kafka: formatting storage (cluster id $cid) ..."
  "${KAFKA_JVM[@]}" kafka.tools.StorageTool format -t "$cid" -c "$KAFKA_PROPS" --standalone \
    >"$LOG_DIR/kafka-format.log" 2>&1 ||
    fail_with_log kafka "$LOG_DIR/kafka-format.log" "kafka.tools.StorageTool format failed"
}

start_kafka() { # prints nothing; leaves the broker starting in the background
  if service_pid kafka >/dev/null; then return 0; fi
  if port_open "$KAFKA_PORT" || port_open "$CONTROLLER_PORT"; then
    die "kafka: $HOST:$KAFKA_PORT or :$CONTROLLER_PORT is already taken by a process this stack did not start (from $STATE_DIR). Stop it (another clone: bash <clone>/infra/stack.sh down), or pick other ports with TAPIO_KAFKA_PORT / TAPIO_CONTROLLER_PORT."
  fi
  ensure_kafka_libs
  kafka_jvm
  write_kafka_props
  format_kafka_once
  log "kafka: starting $KAFKA_VERSION on $HOST:$KAFKA_PORT ..."
  start_bg kafka "$KAFKA_LOG" "${KAFKA_JVM[@]}" kafka.Kafka "$KAFKA_PROPS"
}

wait_kafka() { # wait_kafka <deadline_ms>
  local deadline=$1 pid
  while ! port_open "$KAFKA_PORT"; do
    pid=$(service_pid kafka) || fail_with_log kafka "$KAFKA_LOG" "the broker process exited during start-up"
    (($(now_ms) < deadline)) || fail_with_log kafka "$KAFKA_LOG" "$HOST:$KAFKA_PORT did not open within ${READY_TIMEOUT}s (pid $pid)"
    sleep 0.1
  done
  local left=$(((deadline - $(now_ms)) > 1000 ? deadline - $(now_ms) : 1000))
  if command -v node >/dev/null 2>&1 &&
    (cd "$REPO_ROOT" && node -e "require.resolve('kafkajs')" >/dev/null 2>&1); then
    node "$SCRIPT_DIR/wait-kafka.cjs" "$HOST:$KAFKA_PORT" "$left" >/dev/null ||
      fail_with_log kafka "$KAFKA_LOG" "the broker did not answer describeCluster / FindCoordinator within ${READY_TIMEOUT}s"
  else
    # No kafkajs yet (npm ci not run): fall back to the broker's own start-up line.
    log "kafka: kafkajs not installed in the repo, readiness taken from the broker log"
    until grep -q 'Kafka Server started' "$KAFKA_LOG" 2>/dev/null; do
      service_pid kafka >/dev/null || fail_with_log kafka "$KAFKA_LOG" "the broker process exited during start-up"
      (($(now_ms) < deadline)) || fail_with_log kafka "$KAFKA_LOG" "no 'Kafka Server started' within ${READY_TIMEOUT}s"
      sleep 0.1
    done
  fi
}

# ---------------------------------------------------------------- Apicurio Registry

registry_ready() { [[ "$(http_status "$REGISTRY_URL/health/ready")" == 200 ]]; }

start_registry() {
  if service_pid registry >/dev/null; then return 0; fi
  if port_open "$REGISTRY_PORT"; then
    die "registry: $HOST:$REGISTRY_PORT is already taken by a process this stack did not start (from $STATE_DIR). Stop it, or pick another port with TAPIO_REGISTRY_PORT."
  fi
  ensure_apicurio
  local jar
  if [[ -f "$APICURIO_HOME/quarkus-run.jar" ]]; then # 3.1.5+ (fast-jar layout)
    jar="$APICURIO_HOME/quarkus-run.jar"
  elif [[ -f "$APICURIO_HOME/quarkus-app/quarkus-run.jar" ]]; then
    jar="$APICURIO_HOME/quarkus-app/quarkus-run.jar"
  else # 3.0.x: uber runner jar next to lib/
    jar=$(find "$APICURIO_HOME" -maxdepth 1 -name 'apicurio-registry-app-*-runner.jar' | head -n 1)
  fi
  [[ -n "$jar" && -f "$jar" ]] || die "registry: no runnable jar found in $APICURIO_HOME (delete it to re-resolve)"
  log "registry: starting Apicurio Registry $APICURIO_VERSION on $REGISTRY_URL ..."
  start_bg registry "$REGISTRY_LOG" "$JAVA" -Xmx"$REGISTRY_HEAP" -Xms64m \
    -Dtapio.stack.service=registry -Dtapio.stack.dir="$STATE_DIR" \
    -Dquarkus.http.host="$HOST" -Dquarkus.http.port="$REGISTRY_PORT" \
    -Dapicurio.rest.deletion.group.enabled=true \
    -Dapicurio.rest.deletion.artifact.enabled=true \
    -Dapicurio.rest.deletion.artifact-version.enabled=true \
    -jar "$jar"
}

wait_registry() { # wait_registry <deadline_ms>
  local deadline=$1 pid
  until registry_ready; do
    pid=$(service_pid registry) || fail_with_log registry "$REGISTRY_LOG" "the registry process exited during start-up"
    (($(now_ms) < deadline)) || fail_with_log registry "$REGISTRY_LOG" "$REGISTRY_URL/health/ready not 200 within ${READY_TIMEOUT}s (pid $pid)"
    sleep 0.2
  done
}

# ---------------------------------------------------------------- Redis

redis_ping() {
  if command -v redis-cli >/dev/null 2>&1; then
    [[ "$(redis-cli -h "$HOST" -p "$REDIS_PORT" ping 2>/dev/null)" == PONG ]]
  else
    ( # subshell: a failed exec redirection must not end the script
      exec 3<>"/dev/tcp/$HOST/$REDIS_PORT" && printf 'PING\r\n' >&3 && IFS= read -r -t 2 line <&3 &&
        [[ "$line" == +PONG* ]]
    ) 2>/dev/null
  fi
}

ensure_redis() {
  redis_ping && return 0
  command -v redis-server >/dev/null 2>&1 ||
    die "redis: nothing answers PING on $HOST:$REDIS_PORT and redis-server is not installed (Debian: apt-get install -y redis-server)"
  log "redis: not answering on $HOST:$REDIS_PORT, starting redis-server ..."
  redis-server --daemonize yes --bind "$HOST" --port "$REDIS_PORT" --save "" --appendonly no \
    --dir "$LOG_DIR" --logfile "$LOG_DIR/redis.log" >/dev/null 9>&-
  local i
  for ((i = 0; i < 50; i++)); do
    redis_ping && return 0
    sleep 0.1
  done
  fail_with_log redis "$LOG_DIR/redis.log" "redis-server did not answer PING on $HOST:$REDIS_PORT within 5s"
}

# ---------------------------------------------------------------- commands

print_summary() {
  printf '  %-9s %-40s log: %s\n' kafka "$HOST:$KAFKA_PORT" "$(rel "$KAFKA_LOG")"
  printf '  %-9s %-40s log: %s\n' registry "$CCOMPAT_URL" "$(rel "$REGISTRY_LOG")"
  printf '  %-9s %-40s %s\n' redis "$HOST:$REDIS_PORT" "(machine service, left running by down)"
}

cmd_up() {
  local t0
  t0=$(now_ms)
  mkdir -p "$RUN_DIR" "$LOG_DIR" "$KAFKA_STATE"
  lock
  local kpid rpid
  if kpid=$(service_pid kafka) && rpid=$(service_pid registry) && port_open "$KAFKA_PORT" && registry_ready && redis_ping; then
    log "already running (kafka pid $kpid, registry pid $rpid); nothing to do"
    print_summary
    return 0
  fi
  require_java
  ensure_redis
  # Resolve + start Kafka first so it boots while the registry is resolved and started.
  start_kafka
  start_registry
  local deadline=$(($(now_ms) + READY_TIMEOUT * 1000))
  wait_kafka "$deadline"
  wait_registry "$deadline"
  log "up in $(elapsed "$t0"):"
  print_summary
}

cmd_down() {
  mkdir -p "$RUN_DIR"
  lock
  stop_service registry registry
  stop_service kafka kafka
  log "redis: left running (machine service)"
}

status_line() { # status_line <service> <up|down> <address> <detail> <log>
  printf '  %-9s %-5s %-40s %-14s %s\n' "$1" "$2" "$3" "$4" "$5"
}

cmd_status() {
  local ok=0 pid
  if pid=$(service_pid kafka) && port_open "$KAFKA_PORT"; then
    status_line kafka up "$HOST:$KAFKA_PORT" "pid $pid" "log: $(rel "$KAFKA_LOG")"
  elif [[ -n "${pid:-}" ]]; then
    status_line kafka down "$HOST:$KAFKA_PORT" "pid $pid, starting?" "log: $(rel "$KAFKA_LOG")"
    ok=1
  elif port_open "$KAFKA_PORT"; then
    status_line kafka down "$HOST:$KAFKA_PORT" "port taken by a process not started from $(rel "$STATE_DIR")" ""
    ok=1
  else
    status_line kafka down "$HOST:$KAFKA_PORT" "" "log: $(rel "$KAFKA_LOG")"
    ok=1
  fi
  pid=""
  if pid=$(service_pid registry) && registry_ready; then
    status_line registry up "$CCOMPAT_URL" "pid $pid" "log: $(rel "$REGISTRY_LOG")"
  elif [[ -n "${pid:-}" ]]; then
    status_line registry down "$CCOMPAT_URL" "pid $pid, starting?" "log: $(rel "$REGISTRY_LOG")"
    ok=1
  elif port_open "$REGISTRY_PORT"; then
    status_line registry down "$CCOMPAT_URL" "port taken by a process not started from $(rel "$STATE_DIR")" ""
    ok=1
  else
    status_line registry down "$CCOMPAT_URL" "" "log: $(rel "$REGISTRY_LOG")"
    ok=1
  fi
  if redis_ping; then
    status_line redis up "$HOST:$REDIS_PORT" "" "(machine service)"
  else
    status_line redis down "$HOST:$REDIS_PORT" "" "(machine service; 'up' starts redis-server)"
    ok=1
  fi
  return "$ok"
}

cmd_reset() {
  cmd_down
  log "deleting Kafka storage $KAFKA_STATE and logs $LOG_DIR"
  rm -rf "$KAFKA_STATE" "$LOG_DIR"
}

lock() { # serialise concurrent up/down on one state dir
  command -v flock >/dev/null 2>&1 || return 0
  exec 9>"$RUN_DIR/.lock"
  flock -w 300 9 || die "another infra/stack.sh holds $RUN_DIR/.lock"
}

usage() {
  echo "usage: bash infra/stack.sh up|down|status|reset" >&2
  exit 2
}

case "${1:-}" in
  up) cmd_up ;;
  down) cmd_down ;;
  status) cmd_status ;;
  reset) cmd_reset ;;
  *) usage ;;
esac
