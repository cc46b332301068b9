# shellcheck shell=bash
# Connection settings for the local servers started by infra/local/start.sh.
#
#   source infra/local/env.sh
#
# Safe to source from an interactive shell (sets no shell options). Values already
# set in the environment win, so you can point ReelStream at other servers.

# Kafka (KRaft, single node): PLAINTEXT listener; the controller listener is internal.
export REEL_KAFKA_BOOTSTRAP="${REEL_KAFKA_BOOTSTRAP:-127.0.0.1:19092}"
export REEL_KAFKA_CONTROLLER_PORT="${REEL_KAFKA_CONTROLLER_PORT:-19093}"

# Cassandra (single node): CQL native protocol; storage (gossip) port is internal.
export REEL_CASSANDRA_HOSTS="${REEL_CASSANDRA_HOSTS:-127.0.0.1}"
export REEL_CASSANDRA_PORT="${REEL_CASSANDRA_PORT:-19042}"
export REEL_CASSANDRA_STORAGE_PORT="${REEL_CASSANDRA_STORAGE_PORT:-17000}"

# S3-compatible object store (S3Proxy, filesystem backend). Path-style addressing.
export REEL_S3_ENDPOINT="${REEL_S3_ENDPOINT:-http://127.0.0.1:18333}"
export REEL_S3_ACCESS_KEY="${REEL_S3_ACCESS_KEY:-reelstream}"
export REEL_S3_SECRET_KEY="${REEL_S3_SECRET_KEY:-reelstream-secret}"
export REEL_S3_REGION="${REEL_S3_REGION:-us-east-1}"
