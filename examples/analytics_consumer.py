"""Read ReelStream's topics with only confluent-kafka and fastavro (no ReelStream import)."""
import glob
import io
import json
import sys

from confluent_kafka import Consumer
from fastavro import parse_schema, schemaless_reader
from fastavro.schema import fingerprint, to_parsing_canonical_form

HEADER = "reelstream.events.EventHeader"


def load_writers(schema_dir="events/schemas"):  # fingerprint -> schema, as single-object encoding names them
    with open(f"{schema_dir}/{HEADER}.avsc") as f:
        header = json.load(f)
    writers = {}
    # Current versions and every earlier one (history/): old events stay on the topics.
    for path in glob.glob(f"{schema_dir}/reelstream.events.*.avsc") + glob.glob(f"{schema_dir}/history/*.avsc"):
        with open(path) as f:
            schema = json.load(f)
        for field in schema.get("fields", []):  # writers inlined the shared header record
            if field["type"] == HEADER:
                field["type"] = header
        parsed = parse_schema(schema, named_schemas={})
        writers[bytes.fromhex(fingerprint(to_parsing_canonical_form(parsed), "CRC-64-AVRO"))] = parsed
    return writers


def decode(value, writers):  # C3 01 | 8-byte CRC-64-AVRO fingerprint | Avro binary body
    if value[:2] != b"\xc3\x01" or value[2:10] not in writers:
        raise ValueError(f"not a ReelStream event, or a schema newer than {len(writers)} known: {value[:10].hex()}")
    schema = writers[value[2:10]]
    return schema["name"], schemaless_reader(io.BytesIO(value[10:]), schema)


def consume(consumer, writers, out=sys.stdout, err=sys.stderr):
    """Print every event, until 10 s pass without one once partitions are assigned.

    A record it cannot decode (not an event, or a schema newer than ``writers``) is reported
    with its position and passed over, as ReelStream's processors pass it (dead-lettered):
    one bad record must not stop the stream, and it stays on the topic to be read again.
    An offset is stored for commit only once its record is handled: a crash re-reads it."""
    while True:
        msg = consumer.poll(10.0)
        if msg is None:
            if consumer.assignment():
                return  # caught up: 10 s with partitions and no event
            continue  # still joining the group (a member that died must time out first)
        if msg.error():
            print(f"consumer error: {msg.error()}", file=err)
            continue
        try:
            print(*decode(msg.value(), writers), file=out)
        except ValueError as e:
            print(f"skipped {msg.topic()}/{msg.partition()}@{msg.offset()}: {e}", file=err)
        consumer.store_offsets(msg)


if __name__ == "__main__":
    writers = load_writers()
    consumer = Consumer({"bootstrap.servers": sys.argv[1], "group.id": "analytics", "auto.offset.reset": "earliest",
                         "enable.auto.offset.store": False})
    consumer.subscribe(sys.argv[2:] or ["reel.playback"])
    try:
        consume(consumer, writers)
    finally:
        consumer.close()  # commits what was handled
