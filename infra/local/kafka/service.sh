# shellcheck shell=bash
# Kafka broker (KRaft, single node) from the Apache jars on Maven Central.
# Sourced by infra/local/lib.sh users; defines svc_kafka_* functions.

KAFKA_HOST="${REEL_KAFKA_BOOTSTRAP%:*}"
KAFKA_PORT="${REEL_KAFKA_BOOTSTRAP##*:}"
KAFKA_CONTROLLER_PORT="$REEL_KAFKA_CONTROLLER_PORT"
KAFKA_HEAP="${REEL_KAFKA_HEAP:-512m}"
KAFKA_DIST="$DIST_DIR/kafka"
KAFKA_DATA="$DATA_DIR/kafka"
KAFKA_CONF="$CONF_DIR/kafka"

svc_kafka_ports() { echo "$KAFKA_PORT $KAFKA_CONTROLLER_PORT"; }
svc_kafka_settings() { echo "REEL_KAFKA_BOOTSTRAP REEL_KAFKA_CONTROLLER_PORT"; }
svc_kafka_host() { echo "$KAFKA_HOST"; }
svc_kafka_start_timeout() { echo "${REEL_KAFKA_START_TIMEOUT:-90}"; }
svc_kafka_stop_timeout() { echo 60; }

svc_kafka_fetched() { [[ -f "$KAFKA_DIST/.fetched" ]] && cmp -s "$INFRA_DIR/kafka/pom.xml" "$KAFKA_DIST/.fetched"; }

svc_kafka_fetch() {
  require_java17
  info "kafka: fetching jars with Maven (infra/local/kafka/pom.xml)"
  mvn_fetch "$INFRA_DIR/kafka/pom.xml" "$KAFKA_DIST/libs"
  # the marker is a copy of the POM, so editing a pinned version triggers a new fetch
  cp "$INFRA_DIR/kafka/pom.xml" "$KAFKA_DIST/.fetched"
}

_kafka_java() { # _kafka_java MAINCLASS ARGS... (foreground, for tools)
  java -Xmx256m -Dlog4j2.configurationFile="$INFRA_DIR/kafka/log4j2.properties" \
    -cp "$KAFKA_DIST/libs/*" "$@"
}

svc_kafka_start() {
  require_java17
  export KAFKA_HOST KAFKA_PORT KAFKA_CONTROLLER_PORT KAFKA_DATA
  render "$INFRA_DIR/kafka/server.properties.in" "$KAFKA_CONF/server.properties"
  mkdir -p "$KAFKA_DATA"
  if [[ ! -f "$KAFKA_DATA/metadata/meta.properties" ]]; then
    local cluster_id
    cluster_id="$(_kafka_java kafka.tools.StorageTool random-uuid 2> /dev/null | tail -n1)"
    info "kafka: formatting storage in $KAFKA_DATA (cluster id $cluster_id)"
    mkdir -p "$LOG_DIR"
    if ! _kafka_java kafka.tools.StorageTool format --ignore-formatted \
      -t "$cluster_id" -c "$KAFKA_CONF/server.properties" > "$LOG_DIR/kafka-format.log" 2>&1; then
      cat "$LOG_DIR/kafka-format.log" >&2
      die "kafka: formatting the storage failed"
    fi
  fi
  launch kafka java \
    -Dreelstream.service=kafka \
    -Xms"$KAFKA_HEAP" -Xmx"$KAFKA_HEAP" \
    -XX:+UseG1GC -XX:MaxGCPauseMillis=20 -XX:InitiatingHeapOccupancyPercent=35 \
    -XX:+ExplicitGCInvokesConcurrent -XX:MaxDirectMemorySize=256m \
    -XX:ActiveProcessorCount=2 \
    -Djava.awt.headless=true \
    -Dlog4j2.configurationFile="$INFRA_DIR/kafka/log4j2.properties" \
    -Dkafka.logs.dir="$LOG_DIR" \
    -cp "$KAFKA_DIST/libs/*" \
    kafka.Kafka "$KAFKA_CONF/server.properties"
}

# svc_kafka_health : a metadata request must succeed
svc_kafka_health() {
  port_open "$KAFKA_HOST" "$KAFKA_PORT" || return 1
  local py
  py="$(health_python)"
  if [[ -n "$py" ]] && "$py" -c 'import confluent_kafka' 2> /dev/null; then
    "$py" "$INFRA_DIR/healthcheck.py" kafka
  else
    # no venv: ask the broker for its topics with Kafka's own tool (slower: a JVM start)
    timeout 60 java -Xmx128m -XX:TieredStopAtLevel=1 \
      -Dlog4j2.configurationFile="$INFRA_DIR/kafka/log4j2.properties" \
      -cp "$KAFKA_DIST/libs/*" org.apache.kafka.tools.TopicCommand \
      --bootstrap-server "$REEL_KAFKA_BOOTSTRAP" --list > /dev/null 2>&1
  fi
}

svc_kafka_wipe() { rm -rf "$KAFKA_DATA"; }
