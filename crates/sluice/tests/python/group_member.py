"""A consumer-group member in its own process (confluent-kafka, i.e. librdkafka), so tests
can SIGKILL it. Usage: group_member.py BOOTSTRAP GROUP TOPIC PROTOCOL
PROTOCOL is "classic" or "consumer" (KIP-848). Prints "assigned N" whenever its assignment
changes; runs until killed."""

import sys

from confluent_kafka import Consumer

bootstrap, group, topic, protocol = sys.argv[1:5]
conf = {"bootstrap.servers": bootstrap, "group.id": group, "group.protocol": protocol, "auto.offset.reset": "earliest"}
if protocol == "classic":
    conf.update({"session.timeout.ms": 2000, "heartbeat.interval.ms": 300})
consumer = Consumer(conf)
consumer.subscribe([topic])
last = None
while True:
    consumer.poll(0.1)
    n = len(consumer.assignment())
    if n != last:
        print(f"assigned {n}", flush=True)
        last = n
