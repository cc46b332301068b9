"""Health checks for the local servers (used by infra/local/health.sh and start.sh).

    python infra/local/healthcheck.py kafka|cassandra|s3

Exit status 0 when the server answers a real request, 1 otherwise (reason on stderr).
Reads the connection settings from the REEL_* variables that infra/local/env.sh exports.
Needs the client of the server it checks: confluent-kafka, cassandra-driver or boto3.
"""

from __future__ import annotations

import logging
import os
import sys


def check_kafka() -> None:
    from confluent_kafka.admin import AdminClient

    admin = AdminClient(
        {
            "bootstrap.servers": os.environ.get("REEL_KAFKA_BOOTSTRAP", "127.0.0.1:19092"),
            "socket.timeout.ms": 5000,
            "log_level": 0,
        }
    )
    md = admin.list_topics(timeout=8)
    if not md.brokers:
        raise RuntimeError("metadata response lists no broker")
    if md.controller_id is None or md.controller_id < 0:
        raise RuntimeError("metadata response has no controller yet")


def check_cassandra() -> None:
    logging.getLogger("cassandra").setLevel(logging.CRITICAL)
    from cassandra.cluster import EXEC_PROFILE_DEFAULT, Cluster, ExecutionProfile
    from cassandra.policies import WhiteListRoundRobinPolicy

    hosts = [h.strip() for h in os.environ.get("REEL_CASSANDRA_HOSTS", "127.0.0.1").split(",")]
    profile = ExecutionProfile(
        load_balancing_policy=WhiteListRoundRobinPolicy(hosts), request_timeout=5
    )
    cluster = Cluster(
        hosts,
        port=int(os.environ.get("REEL_CASSANDRA_PORT", "19042")),
        connect_timeout=5,
        control_connection_timeout=5,
        execution_profiles={EXEC_PROFILE_DEFAULT: profile},
        protocol_version=5,
    )
    try:
        session = cluster.connect()
        row = session.execute("SELECT release_version FROM system.local").one()
        if not row or not row.release_version:
            raise RuntimeError("system.local has no release_version")
    finally:
        cluster.shutdown()


def check_s3() -> None:
    import boto3
    from botocore.config import Config

    client = boto3.client(
        "s3",
        endpoint_url=os.environ.get("REEL_S3_ENDPOINT", "http://127.0.0.1:18333"),
        aws_access_key_id=os.environ.get("REEL_S3_ACCESS_KEY", "reelstream"),
        aws_secret_access_key=os.environ.get("REEL_S3_SECRET_KEY", "reelstream-secret"),
        region_name=os.environ.get("REEL_S3_REGION", "us-east-1"),
        config=Config(
            s3={"addressing_style": "path"},
            connect_timeout=3,
            read_timeout=5,
            retries={"max_attempts": 1},
            request_checksum_calculation="when_required",
            response_checksum_validation="when_required",
        ),
    )
    client.list_buckets()


CHECKS = {"kafka": check_kafka, "cassandra": check_cassandra, "s3": check_s3}


def main(argv: list[str]) -> int:
    if len(argv) != 2 or argv[1] not in CHECKS:
        print(f"usage: {argv[0]} {{{'|'.join(CHECKS)}}}", file=sys.stderr)
        return 2
    try:
        CHECKS[argv[1]]()
    except Exception as exc:  # noqa: BLE001 - any failure means "not healthy"
        print(f"{argv[1]}: not healthy: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
