#!/usr/bin/env python3
"""Check that moto_server.py's cheaper DynamoDB queries and SQS calls answer exactly as moto's own.

Queries: random writes (puts, updates that move items between partitions and sort keys, deletes,
transactions, a failed transaction) on a table shaped like Herald's (pk/sk, a GSI with a hash
and a range key), each followed by random queries (both directions, every key-condition
operator, limits, pages followed to the end, a filter) answered twice: by the patched
`Table.query` and by moto's original. Any difference fails.

Queues: the same SQS calls (a batch with delays, a FIFO queue with content-based deduplication,
a queue with a redrive policy, receives, deletes by current, old, repeated, foreign and unknown
receipt handles, attribute reads, all and by name) in a process with
`patch_queues` and one without; the answers must be the same.

Run by `./infra/dev test`; exits non-zero on the first difference.

Usage: check_moto.py [operations] [seed]
"""

import os
import json
import random
import subprocess
import sys

os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
os.environ["HERALD_MOTO_CHECK_QUERIES"] = "1"

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import boto3  # noqa: E402
from botocore.exceptions import ClientError  # noqa: E402
from moto import mock_aws  # noqa: E402

import moto_server  # noqa: E402

PARTITIONS = ["A", "B", "C"]


def item(rng):
    pk, sk = f"P#{rng.randrange(40)}", f"S#{rng.randrange(5)}"
    attrs = {"pk": {"S": pk}, "sk": {"S": sk}, "n": {"N": str(rng.randrange(100))}}
    if rng.random() < 0.8:  # some items are not in the index
        attrs["gpk"] = {"S": rng.choice(PARTITIONS)}
        attrs["gsk"] = {"S": f"{rng.randrange(30):03}#{rng.choice('xyz')}"}
    return attrs


def key(rng):
    return {"pk": {"S": f"P#{rng.randrange(40)}"}, "sk": {"S": f"S#{rng.randrange(5)}"}}


def write(db, rng):
    roll = rng.random()
    if roll < 0.4:
        db.put_item(TableName="t", Item=item(rng))
    elif roll < 0.6:
        db.update_item(
            TableName="t",
            Key=key(rng),
            UpdateExpression="SET gpk = :p, gsk = :s",
            ExpressionAttributeValues={":p": {"S": rng.choice(PARTITIONS)}, ":s": {"S": f"{rng.randrange(30):03}#u"}},
        )
    elif roll < 0.7:
        db.update_item(TableName="t", Key=key(rng), UpdateExpression="REMOVE gpk, gsk")
    elif roll < 0.8:
        db.delete_item(TableName="t", Key=key(rng))
    else:
        keys = {str(k): k for k in (key(rng) for _ in range(3))}.values()
        ops = [{"Update": {"TableName": "t", "Key": k, "UpdateExpression": "SET gsk = :s",
                           "ExpressionAttributeValues": {":s": {"S": f"{rng.randrange(30):03}#t"}}}} for k in keys]
        if rng.random() < 0.3:  # a condition that fails: nothing applied
            ops[-1]["Update"]["ConditionExpression"] = "attribute_not_exists(pk) AND attribute_exists(pk)"
        try:
            db.transact_write_items(TransactItems=ops)
        except ClientError as e:
            assert e.response["Error"]["Code"] == "TransactionCanceledException", e


def conditions(rng):
    a, b = sorted(f"{rng.randrange(30):03}" for _ in range(2))
    return rng.choice([
        ("gpk = :p", {}),
        ("gpk = :p AND gsk <= :a", {":a": {"S": a + "#~"}}),
        ("gpk = :p AND gsk < :a", {":a": {"S": a}}),
        ("gpk = :p AND gsk >= :a", {":a": {"S": a}}),
        ("gpk = :p AND gsk > :a", {":a": {"S": a + "#~"}}),
        ("gpk = :p AND gsk BETWEEN :a AND :b", {":a": {"S": a}, ":b": {"S": b + "#~"}}),
        ("gpk = :p AND begins_with(gsk, :a)", {":a": {"S": a[:2]}}),
        ("gpk = :p AND gsk = :a", {":a": {"S": a + "#x"}}),
    ])


def query(db, rng):
    expression, values = conditions(rng)
    values[":p"] = {"S": rng.choice(PARTITIONS)}
    params = dict(TableName="t", IndexName="gsi", KeyConditionExpression=expression,
                  ExpressionAttributeValues=values, ScanIndexForward=rng.random() < 0.5)
    if rng.random() < 0.7:
        params["Limit"] = rng.randrange(1, 6)
    if rng.random() < 0.2:
        params["FilterExpression"] = "n < :n"
        params["ExpressionAttributeValues"][":n"] = {"N": "50"}
    pages = 0
    while True:  # every page is checked against moto's own answer inside the server
        out = db.query(**params)
        pages += 1
        if "LastEvaluatedKey" not in out:
            return pages
        params["ExclusiveStartKey"] = out["LastEvaluatedKey"]


def queues(patched: bool):
    """The SQS calls both ways; what they answer, without timestamps and ids."""
    if patched:
        moto_server.patch_queues()
    with mock_aws():
        sqs = boto3.client("sqs")
        dlq = sqs.create_queue(QueueName="dead")["QueueUrl"]
        arn = sqs.get_queue_attributes(QueueUrl=dlq, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        redrive = json.dumps({"deadLetterTargetArn": arn, "maxReceiveCount": 5})
        work = sqs.create_queue(QueueName="work", Attributes={"MessageRetentionPeriod": "600", "RedrivePolicy": redrive})["QueueUrl"]
        fifo = sqs.create_queue(QueueName="f.fifo", Attributes={"FifoQueue": "true", "ContentBasedDeduplication": "true"})["QueueUrl"]
        entries = [{"Id": str(i), "MessageBody": f"m{i}", "DelaySeconds": 600 if i % 2 else 0} for i in range(10)]
        sqs.send_message_batch(QueueUrl=work, Entries=entries)
        sqs.send_message(QueueUrl=work, MessageBody="one")
        for _ in range(3):
            sqs.send_message(QueueUrl=fifo, MessageBody="same", MessageGroupId="g")
        got = sqs.receive_message(QueueUrl=work, MaxNumberOfMessages=4, VisibilityTimeout=0)["Messages"]
        received = sorted(m["Body"] for m in got)
        again = sqs.receive_message(QueueUrl=work, MaxNumberOfMessages=4)["Messages"]  # new handles
        answers = [received, sorted(m["Body"] for m in again)]
        old, new = {m["MessageId"]: m["ReceiptHandle"] for m in got}, again[0]
        deletes = [("old handle", old[new["MessageId"]]),
                   ("twice", got[0]["ReceiptHandle"]), ("foreign queue", again[1]["ReceiptHandle"]),
                   ("unknown", "not-a-receipt-handle")]
        for what, handle in deletes:
            url = fifo if what == "foreign queue" else work
            try:
                sqs.delete_message(QueueUrl=url, ReceiptHandle=handle)
                answers.append([what, "deleted"])
            except ClientError as e:
                answers.append([what, e.response["Error"]["Code"]])
        answers.append(sorted(m["Body"] for m in sqs.receive_message(QueueUrl=work, MaxNumberOfMessages=10)["Messages"]))
        for url in (work, fifo, dlq):
            for names in (["All"], ["ApproximateNumberOfMessagesDelayed", "MessageRetentionPeriod", "RedrivePolicy"]):
                attributes = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=names)["Attributes"]
                answers.append({k: v for k, v in attributes.items() if not k.endswith(("Timestamp", "Arn"))})
        return answers


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--queues":
        print(json.dumps(queues(sys.argv[2] == "patched"), sort_keys=True))
        return
    both = [subprocess.run([sys.executable, __file__, "--queues", way], capture_output=True, text=True, check=True).stdout
            for way in ("original", "patched")]
    if both[0] != both[1]:
        sys.exit(f"moto queues: the patched SQS answers differently\n{both[0]}\n{both[1]}")
    print("moto queues: the same answers with and without patch_queues")
    operations = int(sys.argv[1]) if len(sys.argv) > 1 else 300
    seed = int(sys.argv[2]) if len(sys.argv) > 2 else 14
    rng = random.Random(seed)
    moto_server.patch_transactions()
    moto_server.patch_queries()
    with mock_aws():
        db = boto3.client("dynamodb")
        db.create_table(
            TableName="t",
            BillingMode="PAY_PER_REQUEST",
            AttributeDefinitions=[{"AttributeName": n, "AttributeType": "S"} for n in ("pk", "sk", "gpk", "gsk")],
            KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
            GlobalSecondaryIndexes=[{
                "IndexName": "gsi",
                "KeySchema": [{"AttributeName": "gpk", "KeyType": "HASH"}, {"AttributeName": "gsk", "KeyType": "RANGE"}],
                "Projection": {"ProjectionType": "ALL"},
            }],
        )
        pages = 0
        for _ in range(operations):
            write(db, rng)
            pages += query(db, rng)
            # A base-table query: its partition, in sort-key order.
            db.query(TableName="t", KeyConditionExpression="pk = :p",
                     ExpressionAttributeValues={":p": key(rng)["pk"]}, Limit=2)
    print(f"moto queries: {operations} writes, {pages} index pages, each the same as moto's own answer")


if __name__ == "__main__":
    try:
        main()
    except ClientError as e:
        sys.exit(f"moto queries: {e}")
