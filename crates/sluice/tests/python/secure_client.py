"""A confluent-kafka (librdkafka) client with security settings: creates TOPIC if needed,
produces COUNT records and reads them back, then prints one JSON line: the brokers Metadata
named ({"brokers": ["host:port", ...]}) and the values read.
Usage: secure_client.py BOOTSTRAP TOPIC COUNT [key=value ...]
The key=value pairs are client properties (security.protocol, ssl.ca.location,
sasl.mechanism, ...). Exits 3, printing {"error": ...}, when the client cannot connect or
authenticate within 15 s (test.timeout.s=N: N s). test.oauth.token=JWT logs in with
OAUTHBEARER and that token."""

import json
import sys
import time

from confluent_kafka import Consumer, KafkaException, Producer
from confluent_kafka.admin import AdminClient, NewTopic

bootstrap, topic, count = sys.argv[1], sys.argv[2], int(sys.argv[3])
extra = dict(arg.split("=", 1) for arg in sys.argv[4:])
# How long to wait for the cluster (tests expecting a refusal ask for less).
timeout = float(extra.pop("test.timeout.s", "15"))
errors = []


def on_error(e):
    errors.append(str(e))


base = {"bootstrap.servers": bootstrap, "error_cb": on_error, **extra}
# test.oauth.token=JWT: an OAUTHBEARER client whose token callback gives this token (valid,
# as far as the client knows, for an hour).
token = base.pop("test.oauth.token", None)
if token is not None:
    base["oauth_cb"] = lambda _config: (token, time.time() + 3600)


def fail(what):
    # Errors reach error_cb from poll.
    for _ in range(5):
        admin.poll(0.2)
    print(json.dumps({"error": what, "client_errors": errors[:5]}))
    sys.exit(3)


admin = AdminClient(base)
try:
    metadata = admin.list_topics(timeout=timeout)
except KafkaException as e:
    fail(str(e))
brokers = sorted(f"{b.host}:{b.port}" for b in metadata.brokers.values())
if topic not in metadata.topics:
    futures = admin.create_topics([NewTopic(topic, 1, 1)])
    try:
        futures[topic].result(15)
    except KafkaException as e:
        fail(str(e))

producer = Producer({**base, "acks": "all"})
for i in range(count):
    producer.produce(topic, value=f"v-{i}".encode())
if producer.flush(15) != 0:
    fail("records not delivered")

consumer = Consumer(
    {**base, "group.id": f"secure-{topic}", "auto.offset.reset": "earliest", "enable.auto.commit": False}
)
consumer.subscribe([topic])
values = []
for _ in range(60):
    if len(values) >= count:
        break
    m = consumer.poll(0.5)
    if m is not None and m.error() is None:
        values.append(m.value().decode())
consumer.close()
print(json.dumps({"brokers": brokers, "values": values}))
