"""An idempotent acks=all producer (confluent-kafka) that keeps producing while the test kills
brokers. Usage: failover_producer.py BOOTSTRAP TOPIC PARTITIONS STOP_FILE. Each record's value
is its sequence number, sent to partition seq % PARTITIONS; every acknowledgement is printed as
"PARTITION OFFSET SEQ" on stdout, every failure on stderr. Produces until STOP_FILE exists,
then flushes; exits 1 if any record failed."""
import os
import sys
import time

from confluent_kafka import Producer

bootstrap, topic, partitions, stop_file = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
producer = Producer({
    "bootstrap.servers": bootstrap,
    "enable.idempotence": True,
    "acks": "all",
    "message.timeout.ms": 120000,
    "linger.ms": 5,
})
failed = 0


def report(err, msg):
    global failed
    if err is None:
        print(f"{msg.partition()} {msg.offset()} {msg.value().decode()}")
    else:
        failed += 1
        print(f"FAILED {msg.value().decode()}: {err}", file=sys.stderr)


seq = 0
while not os.path.exists(stop_file):
    try:
        producer.produce(topic, value=str(seq).encode(), partition=seq % partitions,
                         on_delivery=report)
    except BufferError:
        producer.poll(0.05)
        continue
    seq += 1
    if seq % 50 == 0:  # about 5,000 records/s
        producer.poll(0.01)
left = producer.flush(120)
print(f"sent {seq}, failed {failed}, unflushed {left}", file=sys.stderr)
sys.exit(1 if failed or left else 0)
