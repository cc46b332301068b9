"""Read ReelStream's topics with only confluent-kafka and fastavro (no ReelStream import)."""
import glob
import io
import sys

from confluent_kafka import Consumer
from fastavro import schemaless_reader
from fastavro.schema import fingerprint, load_schema, to_parsing_canonical_form


def load_writers(schema_dir="events/schemas"):  # fingerprint -> schema, as single-object encoding names them
    schemas = [load_schema(p) for p in glob.glob(f"{schema_dir}/reelstream.events.*.avsc")]
    return {bytes.fromhex(fingerprint(to_parsing_canonical_form(s), "CRC-64-AVRO")): s for s in schemas}

def decode(value, writers):  # C3 01 | 8-byte CRC-64-AVRO fingerprint | Avro binary body
    schema = writers[value[2:10]]
    return schema["name"], schemaless_reader(io.BytesIO(value[10:]), schema)

if __name__ == "__main__":
    writers = load_writers()
    consumer = Consumer({"bootstrap.servers": sys.argv[1], "group.id": "analytics", "auto.offset.reset": "earliest"})
    consumer.subscribe(sys.argv[2:] or ["reel.playback"])
    while (msg := consumer.poll(10.0)) is not None:
        if not msg.error():
            print(*decode(msg.value(), writers))
