"""SCRAM users through confluent-kafka's admin client (AlterUserScramCredentials,
DescribeUserScramCredentials). Usage:
  scram_admin.py BOOTSTRAP set USER PASSWORD MECHANISM...   (SCRAM-SHA-256, SCRAM-SHA-512)
  scram_admin.py BOOTSTRAP delete USER MECHANISM...
  scram_admin.py BOOTSTRAP describe [USER...]
Prints one JSON line: per user, "ok" or the error; for describe, the mechanisms and
iterations. [key=value ...] client properties may follow the bootstrap as --prop key=value."""

import json
import sys

from confluent_kafka import KafkaException
from confluent_kafka.admin import (
    AdminClient,
    ScramCredentialInfo,
    ScramMechanism,
    UserScramCredentialDeletion,
    UserScramCredentialUpsertion,
)

args = sys.argv[1:]
props = {}
while "--prop" in args:
    i = args.index("--prop")
    k, v = args[i + 1].split("=", 1)
    props[k] = v
    del args[i : i + 2]
bootstrap, action, rest = args[0], args[1], args[2:]
admin = AdminClient({"bootstrap.servers": bootstrap, **props})
mech = {"SCRAM-SHA-256": ScramMechanism.SCRAM_SHA_256, "SCRAM-SHA-512": ScramMechanism.SCRAM_SHA_512}


def outcome(futures):
    out = {}
    for user, f in futures.items():
        try:
            f.result(15)
            out[user] = "ok"
        except KafkaException as e:
            out[user] = e.args[0].name()
    return out


if action == "set":
    user, password, mechanisms = rest[0], rest[1], rest[2:]
    alterations = [
        UserScramCredentialUpsertion(user, ScramCredentialInfo(mech[m], 8192), password.encode())
        for m in mechanisms
    ]
    print(json.dumps(outcome(admin.alter_user_scram_credentials(alterations))))
elif action == "delete":
    user, mechanisms = rest[0], rest[1:]
    alterations = [UserScramCredentialDeletion(user, mech[m]) for m in mechanisms]
    print(json.dumps(outcome(admin.alter_user_scram_credentials(alterations))))
else:
    out = {}
    futures = admin.describe_user_scram_credentials(rest or None)
    if not isinstance(futures, dict):
        futures = futures.result(15)
        for user, d in futures.items():
            out[user] = sorted((str(i.mechanism), i.iterations) for i in d.scram_credential_infos)
    else:
        for user, f in futures.items():
            try:
                d = f.result(15)
                out[user] = sorted((str(i.mechanism), i.iterations) for i in d.scram_credential_infos)
            except KafkaException as e:
                out[user] = e.args[0].name()
    print(json.dumps(out))
