#!/usr/bin/env bash
# Single-node Apache Kafka (KRaft) on 127.0.0.1 for tests, built from Maven Central jars.
set -euo pipefail

SERVICE_NAME=kafka
# shellcheck source=lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

KAFKA_VERSION="${KAFKA_VERSION:-3.9.1}"
KAFKA_PORT="${KAFKA_PORT:-9092}"
KAFKA_CONTROLLER_PORT="${KAFKA_CONTROLLER_PORT:-9093}"
KAFKA_HEAP="${KAFKA_HEAP:--Xmx1g}"
KAFKA_START_TIMEOUT="${KAFKA_START_TIMEOUT:-120}"
MAVEN_DEP_PLUGIN="org.apache.maven.plugins:maven-dependency-plugin:3.6.1"

KAFKA_HOME="$ROADPULSE_CACHE/kafka/$KAFKA_VERSION"
LIBS="$KAFKA_HOME/libs"
RUN_DIR="$ROADPULSE_RUN/kafka"
PIDFILE="$RUN_DIR/kafka.pid"
PID_PATTERN="kafka.Kafka"

usage() {
    cat <<EOF
Usage: $(basename "$0") {install|start|stop|status|--help}

Single-node Apache Kafka $KAFKA_VERSION (KRaft, broker+controller) on 127.0.0.1.

  install  fetch the broker jars from Maven Central (once) into
           \$ROADPULSE_CACHE/kafka/$KAFKA_VERSION/libs   (now: $LIBS)
  start    install if needed, wipe and format $RUN_DIR, start the broker in
           the background and wait (<= \${KAFKA_START_TIMEOUT}s) until it answers
           a metadata request. Already running: does nothing.
  stop     stop the broker named by $PIDFILE (TERM, then KILL). Idempotent.
  status   exit 0 if the broker runs and its port accepts, 3 otherwise.

Environment: ROADPULSE_CACHE, ROADPULSE_RUN, KAFKA_PORT (9092),
KAFKA_CONTROLLER_PORT (9093), KAFKA_HEAP (-Xmx1g), KAFKA_START_TIMEOUT (120),
ROADPULSE_PYTHON (interpreter with confluent_kafka for the readiness check).
Logs: $RUN_DIR/logs/server.log (broker), $RUN_DIR/stdout.log (JVM).
Clients: bootstrap servers 127.0.0.1:$KAFKA_PORT
EOF
}

install() {
    if [[ -f "$LIBS/.complete" ]]; then
        log "jars cached in $LIBS"
        return 0
    fi
    command -v mvn >/dev/null || die "mvn not found (apt-get install -y maven)"
    command -v java >/dev/null || die "java not found (apt-get install -y default-jre-headless)"
    log "fetching Kafka $KAFKA_VERSION jars from Maven Central into $LIBS"
    local t0 work
    t0=$(now_s)
    mkdir -p "$KAFKA_HOME"
    work="$(mktemp -d "$KAFKA_HOME/pom.XXXXXX")"
    cat >"$work/pom.xml" <<EOF
<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>roadpulse.local</groupId>
  <artifactId>kafka-runtime</artifactId>
  <version>1</version>
  <packaging>pom</packaging>
  <dependencies>
    <dependency>
      <groupId>org.apache.kafka</groupId>
      <artifactId>kafka_2.13</artifactId>
      <version>$KAFKA_VERSION</version>
    </dependency>
    <dependency>
      <groupId>org.slf4j</groupId>
      <artifactId>slf4j-reload4j</artifactId>
      <version>1.7.36</version>
    </dependency>
    <dependency>
      <groupId>ch.qos.reload4j</groupId>
      <artifactId>reload4j</artifactId>
      <version>1.2.25</version>
    </dependency>
  </dependencies>
</project>
EOF
    local out
    out="$(mktemp -d "$KAFKA_HOME/libs.XXXXXX")"
    if ! (cd "$work" && mvn -B -q "$MAVEN_DEP_PLUGIN:copy-dependencies" \
        -DincludeScope=runtime -DoutputDirectory="$out") >"$work/mvn.log" 2>&1; then
        log_tail "$work/mvn.log"
        rm -rf "$out"
        die "maven could not fetch the Kafka jars (log: $work/mvn.log)"
    fi
    [[ -f "$out/kafka_2.13-$KAFKA_VERSION.jar" ]] || die "kafka_2.13 jar missing after maven run"
    if [[ -f "$LIBS/.complete" ]]; then # another install finished first
        rm -rf "$out" "$work"
        log "jars cached in $LIBS"
        return 0
    fi
    rm -rf "$LIBS"
    mv "$out" "$LIBS"
    touch "$LIBS/.complete"
    rm -rf "$work"
    log "installed $(find "$LIBS" -name '*.jar' | wc -l) jars in $(($(now_s) - t0))s"
}

write_config() {
    mkdir -p "$RUN_DIR/data" "$RUN_DIR/logs"
    cat >"$RUN_DIR/server.properties" <<EOF
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:$KAFKA_CONTROLLER_PORT
listeners=PLAINTEXT://127.0.0.1:$KAFKA_PORT,CONTROLLER://127.0.0.1:$KAFKA_CONTROLLER_PORT
advertised.listeners=PLAINTEXT://127.0.0.1:$KAFKA_PORT
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT
log.dirs=$RUN_DIR/data
auto.create.topics.enable=true
num.partitions=4
default.replication.factor=1
offsets.topic.replication.factor=1
offsets.topic.num.partitions=4
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
group.initial.rebalance.delay.ms=0
log.retention.hours=24
EOF
    # Everything to one file; nothing to the console.
    cat >"$RUN_DIR/log4j.properties" <<EOF
log4j.rootLogger=INFO, file
log4j.appender.file=org.apache.log4j.RollingFileAppender
log4j.appender.file.File=$RUN_DIR/logs/server.log
log4j.appender.file.MaxFileSize=50MB
log4j.appender.file.MaxBackupIndex=2
log4j.appender.file.layout=org.apache.log4j.PatternLayout
log4j.appender.file.layout.ConversionPattern=[%d] %p %m (%c)%n
log4j.logger.kafka.request.logger=WARN
log4j.logger.kafka.network.RequestChannel\$=WARN
log4j.logger.org.apache.kafka.controller=INFO
log4j.logger.state.change.logger=WARN
log4j.logger.kafka.log.LogCleaner=WARN
EOF
    # The storage formatter logs to its own file.
    sed "s#logs/server.log#logs/format.log#" "$RUN_DIR/log4j.properties" >"$RUN_DIR/log4j-tools.properties"
}

# 22-character base64url cluster id from 16 random bytes (what `random-uuid` prints).
cluster_id() {
    head -c 16 /dev/urandom | base64 | tr '+/' '-_' | tr -d '=\n' | cut -c1-22
}

# ready: 0 once a metadata request succeeds (confluent_kafka if importable,
# else kcat, else the port plus the broker's "Kafka Server started" log line).
ready() {
    port_open 127.0.0.1 "$KAFKA_PORT" || return 1
    local py
    py="$(project_python)"
    if [[ -n "$py" ]] && "$py" -c 'import confluent_kafka' 2>/dev/null; then
        "$py" - "127.0.0.1:$KAFKA_PORT" <<'EOF' 2>/dev/null
import sys
from confluent_kafka.admin import AdminClient
md = AdminClient({"bootstrap.servers": sys.argv[1]}).list_topics(timeout=3)
sys.exit(0 if md.brokers else 1)
EOF
        return
    fi
    if command -v kcat >/dev/null; then
        kcat -b "127.0.0.1:$KAFKA_PORT" -L -m 3 >/dev/null 2>&1
        return
    fi
    grep -q "Kafka Server started" "$RUN_DIR/logs/server.log" 2>/dev/null
}

start() {
    if pid_alive "$PIDFILE" "$PID_PATTERN"; then
        log "already running (pid $(cat "$PIDFILE")) on 127.0.0.1:$KAFKA_PORT"
        compose_services_env
        return 0
    fi
    local p
    for p in "$KAFKA_PORT" "$KAFKA_CONTROLLER_PORT"; do
        port_open 127.0.0.1 "$p" && die "port 127.0.0.1:$p is already in use by another process"
    done
    install
    local t0 cp
    t0=$(now_s)
    rm -rf "$RUN_DIR"
    write_config
    cp="$LIBS/*"
    if ! java -Dlog4j.configuration="file:$RUN_DIR/log4j-tools.properties" -cp "$cp" \
        kafka.tools.StorageTool format -t "$(cluster_id)" -c "$RUN_DIR/server.properties" \
        >"$RUN_DIR/format.log" 2>&1; then
        log_tail "$RUN_DIR/format.log" "$RUN_DIR/logs/format.log"
        die "formatting the storage dir failed"
    fi
    log "starting Kafka $KAFKA_VERSION on 127.0.0.1:$KAFKA_PORT (controller :$KAFKA_CONTROLLER_PORT)"
    # shellcheck disable=SC2086
    nohup java $KAFKA_HEAP -Xms256m -XX:+UseG1GC -Djava.awt.headless=true \
        -Dlog4j.configuration="file:$RUN_DIR/log4j.properties" \
        -Dkafka.logs.dir="$RUN_DIR/logs" \
        -cp "$cp" kafka.Kafka "$RUN_DIR/server.properties" \
        >"$RUN_DIR/stdout.log" 2>&1 </dev/null &
    echo $! >"$PIDFILE"
    while true; do
        if ! pid_alive "$PIDFILE"; then
            log_tail "$RUN_DIR/stdout.log" "$RUN_DIR/logs/server.log"
            rm -f "$PIDFILE"
            die "Kafka exited during start-up (logs above)"
        fi
        if ready; then
            break
        fi
        if (($(now_s) - t0 >= KAFKA_START_TIMEOUT)); then
            log_tail "$RUN_DIR/stdout.log" "$RUN_DIR/logs/server.log"
            stop_pidfile "$PIDFILE" "$PID_PATTERN" 10
            die "Kafka did not become ready within ${KAFKA_START_TIMEOUT}s (logs above)"
        fi
        sleep 0.5
    done
    echo "KAFKA_BOOTSTRAP=127.0.0.1:$KAFKA_PORT" >"$RUN_DIR/client.env"
    compose_services_env
    log "ready in $(($(now_s) - t0))s (pid $(cat "$PIDFILE")); KAFKA_BOOTSTRAP=127.0.0.1:$KAFKA_PORT"
}

stop() {
    stop_pidfile "$PIDFILE" "$PID_PATTERN" 30
    compose_services_env
}

status() {
    if pid_alive "$PIDFILE" "$PID_PATTERN" && port_open 127.0.0.1 "$KAFKA_PORT"; then
        echo "kafka: running (pid $(cat "$PIDFILE")) on 127.0.0.1:$KAFKA_PORT"
        return 0
    fi
    echo "kafka: not running"
    return 3
}

case "${1:-}" in
install) install ;;
start) start ;;
stop) stop ;;
status) status ;;
-h | --help | help) usage ;;
*)
    usage >&2
    exit 2
    ;;
esac
