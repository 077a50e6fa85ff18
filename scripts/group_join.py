"""Time of a consumer group's first join with default client settings (confluent-kafka,
i.e. librdkafka): from creating the consumer to its first non-empty assignment, for the
classic and the KIP-848 protocol. Usage: python3 scripts/group_join.py [BOOTSTRAP]"""
import time, sys
from confluent_kafka import Consumer
from confluent_kafka.admin import AdminClient, NewTopic
b=sys.argv[1] if len(sys.argv) > 1 else "127.0.0.1:9092"
a=AdminClient({"bootstrap.servers":b})
for f in a.create_topics([NewTopic("jointest",3,1)]).values():
    try: f.result()
    except Exception as e: print(e)
for proto in ["classic","consumer"]:
    times=[]
    for i in range(3):
        assigned=[]
        conf={"bootstrap.servers":b,"group.id":f"g-{proto}-{i}-{time.time()}","group.protocol":proto}
        t=time.time()
        c=Consumer(conf)
        c.subscribe(["jointest"], on_assign=lambda c,p: p and assigned.append(time.time()))
        while not assigned:
            c.poll(0.05)
        times.append(assigned[0]-t)
        c.close()
    print(proto, "first join (create consumer -> partitions assigned):", " ".join(f"{x*1000:.0f} ms" for x in times), flush=True)
