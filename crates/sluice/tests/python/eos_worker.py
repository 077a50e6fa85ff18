"""An exactly-once stream processor with confluent-kafka: reads INPUT (read_committed, group
GROUP), writes "out-<value>" for each record to OUTPUT, and commits the input offsets in the
same transaction (send_offsets_to_transaction). Runs until INPUT has been idle for IDLE_S
seconds after its first assignment. A second instance with the same transactional id fences the first.
Usage: eos_worker.py BOOTSTRAP INPUT OUTPUT GROUP TRANSACTIONAL_ID [IDLE_S]
Prints "batch N" after each committed transaction."""
import sys
import time

from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition

bootstrap, source, sink, group, txn_id = sys.argv[1:6]
idle_s = float(sys.argv[6]) if len(sys.argv) > 6 else 5.0

consumer = Consumer({
    "bootstrap.servers": bootstrap,
    "group.id": group,
    "enable.auto.commit": False,
    "isolation.level": "read_committed",
    "auto.offset.reset": "earliest",
    # A killed instance's partitions move on within seconds.
    "session.timeout.ms": 6000,
    "heartbeat.interval.ms": 500,
})
producer = Producer({
    "bootstrap.servers": bootstrap,
    "transactional.id": txn_id,
    "linger.ms": 5,
})
producer.init_transactions(30)
assigned = []
consumer.subscribe([source], on_assign=lambda c, parts: assigned.extend(parts))

last_record = None
batches = 0
while last_record is None or time.time() - last_record < idle_s:
    if last_record is None and assigned:
        last_record = time.time()  # the idle time counts from the first assignment
    msgs = consumer.consume(num_messages=20, timeout=0.5)
    msgs = [m for m in msgs if m.error() is None]
    if not msgs:
        continue
    last_record = time.time()
    producer.begin_transaction()
    for m in msgs:
        producer.produce(sink, value=b"out-" + m.value(), partition=m.partition())
    offsets = {}
    for m in msgs:
        offsets[(m.topic(), m.partition())] = m.offset() + 1
    producer.send_offsets_to_transaction(
        [TopicPartition(t, p, o) for (t, p), o in offsets.items()],
        consumer.consumer_group_metadata(), 30)
    try:
        producer.commit_transaction(30)
    except KafkaException as e:
        if e.args[0].txn_requires_abort():
            producer.abort_transaction(30)
            # Start again from the last committed offsets.
            for tp in consumer.committed([TopicPartition(t, p) for (t, p) in offsets], 10):
                consumer.seek(TopicPartition(tp.topic, tp.partition,
                                             tp.offset if tp.offset >= 0 else 0))
            continue
        raise
    batches += 1
    print(f"batch {batches}", flush=True)
consumer.close()
