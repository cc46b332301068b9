# shellcheck shell=bash
# Apache Cassandra 5.0, single node, from cassandra-all and its dependencies on Maven Central.
# Sourced by infra/local/lib.sh; defines svc_cassandra_* functions.

CASSANDRA_HOST="${REEL_CASSANDRA_HOSTS%%,*}"
CASSANDRA_PORT="$REEL_CASSANDRA_PORT"
CASSANDRA_STORAGE_PORT="$REEL_CASSANDRA_STORAGE_PORT"
CASSANDRA_HEAP="${REEL_CASSANDRA_HEAP:-2G}"
CASSANDRA_DIST="$DIST_DIR/cassandra"
CASSANDRA_DATA="$DATA_DIR/cassandra"
CASSANDRA_CONF="$CONF_DIR/cassandra"

svc_cassandra_ports() { echo "$CASSANDRA_PORT $CASSANDRA_STORAGE_PORT"; }
svc_cassandra_settings() { echo "REEL_CASSANDRA_HOSTS REEL_CASSANDRA_PORT REEL_CASSANDRA_STORAGE_PORT"; }
svc_cassandra_host() { echo "$CASSANDRA_HOST"; }
svc_cassandra_start_timeout() { echo "${REEL_CASSANDRA_START_TIMEOUT:-180}"; }
svc_cassandra_stop_timeout() { echo 60; }

svc_cassandra_fetched() {
  [[ -f "$CASSANDRA_DIST/.fetched" ]] && cmp -s "$INFRA_DIR/cassandra/pom.xml" "$CASSANDRA_DIST/.fetched"
}

svc_cassandra_fetch() {
  require_java17
  info "cassandra: fetching jars with Maven (infra/local/cassandra/pom.xml)"
  mvn_fetch "$INFRA_DIR/cassandra/pom.xml" "$CASSANDRA_DIST/lib"
  cp "$INFRA_DIR/cassandra/pom.xml" "$CASSANDRA_DIST/.fetched"
}

svc_cassandra_start() {
  require_java17
  export CASSANDRA_HOST CASSANDRA_PORT CASSANDRA_STORAGE_PORT CASSANDRA_DATA
  render "$INFRA_DIR/cassandra/cassandra.yaml.in" "$CASSANDRA_CONF/cassandra.yaml"
  cp "$INFRA_DIR/cassandra/logback.xml" "$CASSANDRA_CONF/logback.xml"
  mkdir -p "$CASSANDRA_DATA"/{data,commitlog,saved_caches,hints,cdc_raw} "$CASSANDRA_CONF/triggers"

  local -a jvm_opts
  mapfile -t jvm_opts < <(grep -E '^-' "$INFRA_DIR/cassandra/jvm17-server.options")
  local jamm
  jamm="$(compgen -G "$CASSANDRA_DIST/lib/jamm-*.jar" | head -n1 || true)"

  launch cassandra java \
    -Dreelstream.service=cassandra \
    -Xms"$CASSANDRA_HEAP" -Xmx"$CASSANDRA_HEAP" -Xmn256M \
    -XX:MaxDirectMemorySize=512M \
    "${jvm_opts[@]}" \
    ${jamm:+-javaagent:"$jamm"} \
    -Dcassandra.config="file://$CASSANDRA_CONF/cassandra.yaml" \
    -Dcassandra.storagedir="$CASSANDRA_DATA" \
    -Dcassandra.logdir="$LOG_DIR" \
    -Dcassandra.triggers_dir="$CASSANDRA_CONF/triggers" \
    -Dlogback.configurationFile="$CASSANDRA_CONF/logback.xml" \
    -Dcassandra-foreground=yes \
    -cp "$CASSANDRA_CONF:$CASSANDRA_DIST/lib/*" \
    org.apache.cassandra.service.CassandraDaemon
}

# svc_cassandra_health : a CQL query must answer
svc_cassandra_health() {
  port_open "$CASSANDRA_HOST" "$CASSANDRA_PORT" || return 1
  local py
  py="$(health_python)"
  if [[ -n "$py" ]] && "$py" -c 'import cassandra.cluster' 2> /dev/null; then
    "$py" "$INFRA_DIR/healthcheck.py" cassandra
  else
    # no venv: the CQL port answers and this run logged that it serves CQL clients
    grep -q "Starting listening for CQL clients" "$LOG_DIR/cassandra.log" 2> /dev/null
  fi
}

svc_cassandra_wipe() { rm -rf "$CASSANDRA_DATA"; }
