"""A share group member (confluent-kafka's ShareConsumer, i.e. librdkafka) in its own process,
so tests can SIGKILL it. Usage: share_member.py BOOTSTRAP GROUP TOPIC ACTION [LIMIT]

ACTION says what it does with each record it gets:
  accept, release, reject  acknowledge it so (explicit mode), committed after each poll;
  release-once             release it on its first delivery, accept it after;
  hold                     never acknowledge (explicit mode; polls until it gets records, prints
                           {"holding": N}, then sleeps);
  implicit                 nothing: implicit mode accepts a poll's records on the next poll.
Prints one JSON line per record it gets: {"p": partition, "o": offset, "d": delivery count,
"v": value, "ts": the record's timestamp, "at": when it got it (epoch ms)}. With LIMIT it closes (committing what is pending) once it got that many;
otherwise it runs until killed."""

import json
import sys
import time

from confluent_kafka import AcknowledgeType, ShareConsumer

bootstrap, group, topic, action = sys.argv[1:5]
limit = int(sys.argv[5]) if len(sys.argv) > 5 else None
explicit = action != "implicit"
consumer = ShareConsumer(
    {
        "bootstrap.servers": bootstrap,
        "group.id": group,
        "share.acknowledgement.mode": "explicit" if explicit else "implicit",
    }
)
consumer.subscribe([topic])
types = {"accept": AcknowledgeType.ACCEPT, "release": AcknowledgeType.RELEASE, "reject": AcknowledgeType.REJECT}
got = 0
while limit is None or got < limit:
    messages = consumer.poll(0.5)
    for m in messages:
        if m.error():
            print(json.dumps({"error": str(m.error())}), flush=True)
            continue
        got += 1
        print(
            json.dumps(
                {
                    "p": m.partition(),
                    "o": m.offset(),
                    "d": m.delivery_count(),
                    "v": m.value().decode(),
                    "ts": m.timestamp()[1],
                    "at": int(time.time() * 1000),
                }
            ),
            flush=True,
        )
        if action == "hold":
            continue
        if action == "release-once":
            consumer.acknowledge(m, AcknowledgeType.RELEASE if m.delivery_count() == 1 else AcknowledgeType.ACCEPT)
        elif explicit:
            consumer.acknowledge(m, types[action])
    if action == "hold" and got > 0:
        print(json.dumps({"holding": got}), flush=True)
        while True:
            time.sleep(1)
    if explicit and len(messages) > 0:
        consumer.commit_sync()
if not explicit:
    # librdkafka's close() does not accept the last poll's records in implicit mode; a commit
    # does (as the next poll would).
    consumer.commit_sync()
consumer.close()
print(json.dumps({"closed": True}), flush=True)
