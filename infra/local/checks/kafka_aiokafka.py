"""aiokafka (Faust's Kafka client) round trip against the local broker.

    .venv/bin/python infra/local/checks/kafka_aiokafka.py

Admin create topic, idempotent producer, transactional producer, consumer group with
read_committed, commit, rejoin from the committed offsets. Needs aiokafka (faust-streaming).
"""
import asyncio
import os
import time
import uuid

import aiokafka
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

BOOT = os.environ.get("REEL_KAFKA_BOOTSTRAP", "127.0.0.1:19092")

async def main():
    print("aiokafka", aiokafka.__version__)
    topic = "aiok-check-" + uuid.uuid4().hex[:8]
    admin = AIOKafkaAdminClient(bootstrap_servers=BOOT)
    await admin.start()
    await admin.create_topics([NewTopic(topic, num_partitions=2, replication_factor=1)])
    await admin.close()
    prod = AIOKafkaProducer(bootstrap_servers=BOOT, acks="all", enable_idempotence=True)
    await prod.start()
    for i in range(10):
        await prod.send_and_wait(topic, f"m{i}".encode(), key=f"k{i}".encode())
    # transactional producer too (faust exactly_once uses it)
    tp = AIOKafkaProducer(bootstrap_servers=BOOT, transactional_id="aiok-check-tx-" + topic)
    await tp.start()
    async with tp.transaction():
        await tp.send(topic, b"tx", key=b"ktx")
    await tp.stop()
    await prod.stop()
    group = "g-" + topic
    t0 = time.time()
    cons = AIOKafkaConsumer(topic, bootstrap_servers=BOOT, group_id=group,
                            auto_offset_reset="earliest", enable_auto_commit=False,
                            isolation_level="read_committed")
    await cons.start()
    got = []
    async def consume():
        async for msg in cons:
            got.append(msg.value)
            if len(got) >= 11:
                break
    await asyncio.wait_for(consume(), 60)
    await cons.commit()
    committed = {tp_: await cons.committed(tp_) for tp_ in cons.assignment()}
    await cons.stop()
    print("consumed", len(got), "in %.2fs" % (time.time() - t0), "committed", sorted(committed.values()))
    # rejoin: committed offsets must be honoured
    cons = AIOKafkaConsumer(topic, bootstrap_servers=BOOT, group_id=group, auto_offset_reset="earliest")
    await cons.start()
    data = await cons.getmany(timeout_ms=3000)
    again = sum(len(v) for v in data.values())
    print("after rejoin, records:", again)
    await cons.stop()
    admin = AIOKafkaAdminClient(bootstrap_servers=BOOT)
    await admin.start()
    await admin.delete_topics([topic])
    await admin.close()
    assert len(got) == 11 and again == 0
    print("OK")

asyncio.run(main())
