"""Transactional producers must stop at once against a broker without transactions, with
an error that says so, instead of retrying for minutes. Checks kafka-python and aiokafka.
Usage: transactions_fail_fast.py BOOTSTRAP. Prints one line per client; exits 1 on failure."""
import asyncio
import sys
import time

bootstrap = sys.argv[1]
LIMIT_S = 10
failures = []


def check(name, started, error):
    took = time.time() - started
    text = f"{type(error).__name__}: {error}" if error else "no error"
    print(f"{name}: {took:.1f} s, {text}", flush=True)
    if error is None:
        failures.append(f"{name}: transactions were accepted")
    elif took > LIMIT_S:
        failures.append(f"{name}: took {took:.1f} s to fail")


def kafka_python():
    from kafka import KafkaProducer

    started = time.time()
    error = None
    try:
        p = KafkaProducer(bootstrap_servers=bootstrap, transactional_id="txn-kafka-python",
                          max_block_ms=60000)
        p.init_transactions()
    except Exception as e:  # noqa: BLE001 - any error is the expected outcome
        error = e
    check("kafka-python", started, error)


async def aiokafka_client():
    from aiokafka import AIOKafkaProducer

    started = time.time()
    error = None
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, transactional_id="txn-aiokafka")
    try:
        await asyncio.wait_for(producer.start(), timeout=60)
    except Exception as e:  # noqa: BLE001
        error = e
    finally:
        try:
            await producer.stop()
        except Exception:  # noqa: BLE001
            pass
    check("aiokafka", started, error)


kafka_python()
asyncio.run(aiokafka_client())
if failures:
    print("\n".join(failures), file=sys.stderr)
    sys.exit(1)
