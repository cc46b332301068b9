"""Faust (faust-streaming) worker round trip against the local broker.

    .venv/bin/python infra/local/checks/faust_app.py [at_least_once|exactly_once]

Creates an input topic, produces 5 records with confluent-kafka, then runs a Faust worker
whose agent counts them in a table (changelog topic) and exits 0 once all 5 are seen.
Gives up after 90 s (exit 1).
"""
import os
import subprocess
import sys
import uuid

BOOT = os.environ.get("REEL_KAFKA_BOOTSTRAP", "127.0.0.1:19092")

if __name__ == "__main__" and os.environ.get("_REEL_FAUST_WORKER") != "1":
    from confluent_kafka import Producer
    from confluent_kafka.admin import AdminClient, NewTopic

    guarantee = sys.argv[1] if len(sys.argv) > 1 else "at_least_once"
    suffix = uuid.uuid4().hex[:8]
    admin = AdminClient({"bootstrap.servers": BOOT})
    for f in admin.create_topics([NewTopic(f"faust-check-in-{suffix}", 1, 1)]).values():
        f.result()
    p = Producer({"bootstrap.servers": BOOT})
    for i in range(5):
        p.produce(f"faust-check-in-{suffix}", key=b"k%d" % (i % 2), value=b"v%d" % i)
    p.flush(10)
    env = dict(os.environ, _REEL_FAUST_WORKER="1", SUF=suffix, PG=guarantee)
    try:
        r = subprocess.run(
            [sys.executable, __file__, "worker", "-l", "warn"], env=env, timeout=90,
            capture_output=True, text=True, check=False,
        )
        out = r.stdout + r.stderr
        ok = r.returncode == 0 and "FAUST_OK" in out
    except subprocess.TimeoutExpired as e:
        out, ok = f"timed out after 90 s\n{e.stdout or ''}{e.stderr or ''}", False
    print(f"faust {guarantee}: {'OK' if ok else 'FAILED'}")
    if not ok:
        print(out[-4000:])
    sys.exit(0 if ok else 1)

import faust

suffix = os.environ["SUF"]
app = faust.App(
    f"reel-faust-check-{suffix}", broker=f"kafka://{BOOT}", store="memory://",
    topic_partitions=1, web_enabled=False, datadir=f"/tmp/reel-faust-check-{suffix}",
    processing_guarantee=os.environ.get("PG", "at_least_once"),
)
topic = app.topic(f"faust-check-in-{suffix}", key_type=bytes, value_type=bytes,
                  key_serializer="raw", value_serializer="raw")
counts = app.Table(f"counts-{suffix}", default=int)
seen = []


@app.agent(topic)
async def process(stream):
    async for key, value in stream.items():
        counts[key] += 1
        seen.append(value)
        if len(seen) == 5:
            print("FAUST_OK", dict(counts.items()), flush=True)
            os._exit(0)


if __name__ == "__main__":
    app.main()
