"""confluent-kafka's transactional producer against Sluice: a committed transaction is seen
by read_committed consumers, an aborted one never; read_uncommitted sees both; a second
producer with the same transactional id fences the first.
Usage: confluent_transactions.py BOOTSTRAP. Exits 1 with a message on failure."""
import sys

from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition

bootstrap = sys.argv[1]
TOPIC = "ck-txn"


def fail(msg):
    print(msg, flush=True)
    sys.exit(1)


def producer(txn_id):
    p = Producer({"bootstrap.servers": bootstrap, "transactional.id": txn_id, "linger.ms": 5})
    p.init_transactions(30)
    return p


def read(isolation):
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": "ck-reader",
                  "enable.auto.commit": False, "isolation.level": isolation,
                  "enable.partition.eof": True})
    c.assign([TopicPartition(TOPIC, 0, 0)])
    values = []
    while True:
        m = c.poll(10)
        if m is None:
            fail(f"{isolation}: no end of partition")
        if m.error():
            if m.error().code() == KafkaError._PARTITION_EOF:
                break
            fail(f"{isolation}: {m.error()}")
        values.append(m.value().decode())
    c.close()
    return values


p = producer("ck-txn-1")
p.begin_transaction()
p.produce(TOPIC, b"committed-0", partition=0)
p.produce(TOPIC, b"committed-1", partition=0)
p.commit_transaction(30)
p.begin_transaction()
p.produce(TOPIC, b"aborted-0", partition=0)
p.flush(30)
p.abort_transaction(30)
p.begin_transaction()
p.produce(TOPIC, b"committed-2", partition=0)
p.commit_transaction(30)

committed = read("read_committed")
if committed != ["committed-0", "committed-1", "committed-2"]:
    fail(f"read_committed saw {committed}")
everything = read("read_uncommitted")
if everything != ["committed-0", "committed-1", "aborted-0", "committed-2"]:
    fail(f"read_uncommitted saw {everything}")

newer = producer("ck-txn-1")
try:
    p.begin_transaction()
    p.produce(TOPIC, b"zombie", partition=0)
    p.commit_transaction(30)
    fail("the fenced producer committed")
except KafkaException as e:
    err = e.args[0]
    if not err.fatal() and err.code() not in (KafkaError._FENCED, KafkaError.PRODUCER_FENCED,
                                               KafkaError.INVALID_PRODUCER_EPOCH):
        fail(f"unexpected error for the zombie: {err}")
    print(f"fenced: {err}", flush=True)
if "zombie" in read("read_committed"):
    fail("the zombie's record is visible")
print("ok", flush=True)
