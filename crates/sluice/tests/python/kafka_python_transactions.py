"""kafka-python's transactional producer against Sluice: a committed transaction is seen by
a read_committed consumer, an aborted one is not, offsets sent to a transaction count only
on commit, and a second producer with the same transactional id fences the first.
Usage: kafka_python_transactions.py BOOTSTRAP. Exits 1 with a message on failure."""
import sys
import time

from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.structs import OffsetAndMetadata

bootstrap = sys.argv[1]
TOPIC = "kp-txn"


def producer(txn_id):
    p = KafkaProducer(bootstrap_servers=bootstrap, transactional_id=txn_id)
    p.init_transactions()
    return p


def read(isolation):
    c = KafkaConsumer(bootstrap_servers=bootstrap, isolation_level=isolation,
                      enable_auto_commit=False, auto_offset_reset="earliest",
                      consumer_timeout_ms=3000)
    c.assign([TopicPartition(TOPIC, 0)])
    c.seek_to_beginning()
    values = [m.value.decode() for m in c]
    c.close()
    return values


def fail(msg):
    print(msg, flush=True)
    sys.exit(1)


p = producer("kp-txn-1")
p.begin_transaction()
p.send(TOPIC, b"committed-0", partition=0)
p.send(TOPIC, b"committed-1", partition=0)
p.commit_transaction()
p.begin_transaction()
p.send(TOPIC, b"aborted-0", partition=0)
p.flush()
p.abort_transaction()
# Offsets sent within a transaction: counted on commit.
p.begin_transaction()
p.send(TOPIC, b"committed-2", partition=0)
p.send_offsets_to_transaction({TopicPartition(TOPIC, 0): OffsetAndMetadata(2, "", -1)},
                              "kp-group")
p.commit_transaction()

committed = read("read_committed")
if committed != ["committed-0", "committed-1", "committed-2"]:
    fail(f"read_committed saw {committed}")
everything = read("read_uncommitted")
if "aborted-0" not in everything or len(everything) != 4:
    fail(f"read_uncommitted saw {everything}")

c = KafkaConsumer(bootstrap_servers=bootstrap, group_id="kp-group", enable_auto_commit=False)
got = c.committed(TopicPartition(TOPIC, 0))
c.close()
if got != 2:
    fail(f"the group's committed offset is {got}, not 2")

# A second producer with the same id fences the first.
newer = producer("kp-txn-1")
try:
    p.begin_transaction()
    p.send(TOPIC, b"zombie", partition=0)
    p.commit_transaction()
    fail("the fenced producer committed")
except Exception as e:  # noqa: BLE001 - any fencing error is the expected outcome
    print(f"fenced: {type(e).__name__}: {e}", flush=True)
newer.close()
print("ok", flush=True)
