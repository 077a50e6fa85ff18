"""Smoke test with kafka-python against a running Sluice broker.

Usage: python3 kafka_python_smoke.py HOST:PORT
Exits non-zero (with the failing assertion) if anything does not behave as Kafka would.
"""

import sys
import time

from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import ConfigResource, ConfigResourceType, NewPartitions, NewTopic
from kafka.errors import TopicAlreadyExistsError

bootstrap = sys.argv[1]

admin = KafkaAdminClient(bootstrap_servers=bootstrap, client_id="py-admin")
admin.create_topics([NewTopic("py-topic", num_partitions=2, replication_factor=1, topic_configs={"retention.ms": "60000"})])
assert "py-topic" in admin.list_topics(), admin.list_topics()
try:
    admin.create_topics([NewTopic("py-topic", num_partitions=2, replication_factor=1)])
    raise AssertionError("creating an existing topic must fail")
except TopicAlreadyExistsError:
    pass
configs = admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, "py-topic")])
text = repr(configs)
assert "retention.ms" in text and "60000" in text, text

# kafka-python's defaults: idempotence on (InitProducerId), acks=all.
producer = KafkaProducer(bootstrap_servers=bootstrap, compression_type="gzip", linger_ms=5)
futures = [producer.send("py-topic", key=b"k%d" % (i % 10), value=b"value-%d" % i, timestamp_ms=1_700_000_000_000 + i) for i in range(200)]
producer.flush()
placed = {}
for i, f in enumerate(futures):
    md = f.get(timeout=10)
    key = i % 10
    assert placed.setdefault(key, md.partition) == md.partition, "same key, same partition"

consumer = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, consumer_timeout_ms=5000)
parts = [TopicPartition("py-topic", 0), TopicPartition("py-topic", 1)]
consumer.assign(parts)
consumer.seek_to_beginning()
seen = []
deadline = time.time() + 30
while len(seen) < 200 and time.time() < deadline:
    for records in consumer.poll(timeout_ms=500).values():
        seen.extend(r.value for r in records)
assert sorted(seen) == sorted(b"value-%d" % i for i in range(200)), len(seen)
ends = consumer.end_offsets(parts)
assert sum(ends.values()) == 200, ends
found = consumer.offsets_for_times({parts[0]: 1_700_000_000_000, parts[1]: 9_999_999_999_999})
assert found[parts[0]] is not None and found[parts[0]].offset == 0, found
assert found[parts[1]] is None, found

# A consumer group: subscribe, read everything, commit; then inspect it through the admin API.
group_consumer = KafkaConsumer(
    "py-topic", bootstrap_servers=bootstrap, group_id="py-group", auto_offset_reset="earliest",
    enable_auto_commit=False, consumer_timeout_ms=10000,
)
got = 0
deadline = time.time() + 30
while got < 200 and time.time() < deadline:
    for records in group_consumer.poll(timeout_ms=500).values():
        got += len(records)
assert got == 200, got
group_consumer.commit()
listed = repr(admin.list_groups())
assert "py-group" in listed, listed
described = repr(admin.describe_groups(["py-group"]))
assert "Stable" in described and "range" in described, described
committed = repr(admin.list_group_offsets({"py-group": None}))
assert "py-topic" in committed, committed
print(listed, described, committed, sep="\n")
group_consumer.close()

admin.create_partitions({"py-topic": NewPartitions(total_count=3)})
admin.delete_topics(["py-topic"])
assert "py-topic" not in admin.list_topics()
print("kafka-python smoke test passed")
