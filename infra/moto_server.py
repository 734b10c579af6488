#!/usr/bin/env python3
"""Serve moto (AWS emulation) on a loopback port for Herald's local stack and tests.

Herald runs two of these: DynamoDB alone on a single-threaded server, because moto's threaded
server does not make conditional updates atomic (over-admitted rate limits, lost updates), and
KMS + SQS on a threaded one, because a single-threaded server stalls every call behind an SQS
long poll.

The DynamoDB server also raises, when a test asks, the faults DynamoDB raises and moto never does
(`DynamoFaults`: transaction conflicts, throttling, lost answers, and the `ClientRequestToken` rule).
Both make moto's per-call costs those of the call, not of everything stored (`patch_transactions`,
`patch_queries`, `patch_queues`), with moto's answers unchanged.

Prints `READY <port>` on stdout once it accepts connections (port 0 picks a free one).
With --exit-with-parent it exits when the process that started it dies, so a killed test run
leaves no server behind.
"""

import argparse
import json
import logging
import os
import sys
import threading
import time

LOOPBACK = {"127.0.0.1", "localhost", "::1"}


def watch_parent(parent: int) -> None:
    # Polling is the portable way to notice the parent's death (no prctl in the stdlib).
    while os.getppid() == parent:
        time.sleep(0.5)
    os._exit(0)


def patch_transactions() -> None:
    """Make TransactWriteItems cost what the items cost, not what the table holds.

    moto 5 deep-copies every table a transaction touches before applying it, so that it can roll
    back; with thousands of items each transaction takes tens of milliseconds and the chaos run
    (two transactions per publish) slows down several times. On a single-threaded server the
    same semantics need no copy: every condition is checked against the state before the
    transaction (as DynamoDB does), and the writes are applied only when all of them pass.
    """
    from moto.dynamodb import models
    from moto.dynamodb.comparisons import get_filter_expression
    from moto.dynamodb.exceptions import (
        MultipleTransactionsException,
        TooManyTransactionsException,
        TransactionCanceledException,
        TransactWriteSingleOpException,
    )

    def transact_write_items(self, transact_items):
        if len(transact_items) > 100:
            raise TooManyTransactionsException()
        seen, reasons, writes = set(), [], []
        for entry in transact_items:
            if len(entry) > 1:
                raise TransactWriteSingleOpException
            op_type, op = next(iter(entry.items()))
            if op_type not in {"ConditionCheck", "Put", "Delete", "Update"}:
                raise ValueError("Unsupported transaction operation")
            table_name = op["TableName"]
            if op_type == "Put":
                table = self.get_table(table_name)
                key = {table.hash_key_attr: op["Item"][table.hash_key_attr]}
                if table.range_key_attr is not None:
                    key[table.range_key_attr] = op["Item"][table.range_key_attr]
            else:
                key = op["Key"]
            unique = (str(table_name), str(dict(sorted(key.items()))))
            if unique in seen:
                raise MultipleTransactionsException()
            seen.add(unique)
            current = self.get_item(table_name, key)
            condition = op.get("ConditionExpression")
            names, values = op.get("ExpressionAttributeNames"), op.get("ExpressionAttributeValues")
            if condition is not None and not get_filter_expression(condition, names, values).expr(current):
                old = None
                if op.get("ReturnValuesOnConditionCheckFailure") == "ALL_OLD" and current:
                    old = current.to_json()["Attributes"]
                reasons.append(("ConditionalCheckFailed", "The conditional request failed", old))
            else:
                reasons.append((None, None, None))
            writes.append((op_type, op, table_name, key, names, values))
        if any(code is not None for code, _, _ in reasons):
            raise TransactionCanceledException(reasons)
        # Conditions hold (each item appears once, so none changed since it was checked); they
        # go along so moto validates the expressions as the original does.
        for op_type, op, table_name, key, names, values in writes:
            condition = op.get("ConditionExpression")
            common = dict(
                condition_expression=condition,
                expression_attribute_names=names,
                expression_attribute_values=values,
            )
            if op_type == "Put":
                self.put_item(table_name, op["Item"], **common)
            elif op_type == "Delete":
                self.delete_item(table_name, key, **common)
            elif op_type == "Update":
                self.update_item(table_name, key, update_expression=op["UpdateExpression"], **common)

    models.DynamoDBBackend.transact_write_items = transact_write_items


def patch_queries() -> None:
    """Make Query cost what it reads, not what the table holds.

    moto 5 answers every Query by sorting the whole table (`Table.all_items`) and walking it: a
    page of a partition of 100,000 items costs about as much as a scan, and a sweep of 100,000
    due targets (a thousand pages) takes hours. Here each secondary index with one hash and one
    range key keeps its partitions' keys in the order Query reads them, updated on every write
    (`Table.put_item`, `Table.delete_item`, and `DynamoDBBackend.update_item`, which changes an
    item in place); a query hands moto's own `Table.query` just the items it would read: from
    the exclusive start key, the run matching the key condition, at most `Limit` of them and the
    one after (which is what makes moto return a LastEvaluatedKey). A base-table query gets its
    partition. Everything else (filters, projections, the answer's shape) is moto's, unchanged;
    queries of any other shape go to moto as they are.

    With HERALD_MOTO_CHECK_QUERIES=1 every query is also answered the original way and a
    difference is an error, so a run proves the two agree (`infra/check_moto.py`;
    docs/decisions.md, "moto's costs").
    """
    import bisect

    from moto.dynamodb import models
    from moto.dynamodb.models import table as tables
    from moto.dynamodb.models.dynamo_type import DynamoType

    original_query = tables.Table.query
    check = os.environ.get("HERALD_MOTO_CHECK_QUERIES") == "1"

    def stored(table, pk):
        part = table.items.get(pk[0])
        if part is None or table.range_key_attr is None:
            return part
        return part.get(pk[1])

    class Index:
        """One index's items: per partition value, sort keys in Query's order and their items' keys."""

        def __init__(self, table, hash_attr, range_attr):
            self.hash_attr, self.range_attr = hash_attr, range_attr
            self.order = [hash_attr, range_attr, table.hash_key_attr]
            if table.range_key_attr is not None:
                self.order.append(table.range_key_attr)
            self.items_id = id(table.items)
            self.where = {}  # item key -> (partition value, sort key)
            self.parts = {}  # partition value -> ([sort key], [item key])
            for item in table.all_items():
                self.add((item.hash_key, item.range_key), item)

        def add(self, pk, item):
            part, sort = item.attrs.get(self.hash_attr), item.attrs.get(self.range_attr)
            if part is None or sort is None:
                return  # not in the index (DynamoDB indexes only items with its key attributes)
            key = tuple(item.attrs[a] for a in self.order)
            keys, pks = self.parts.setdefault(part, ([], []))
            at = bisect.bisect_left(keys, key)
            keys.insert(at, key)
            pks.insert(at, pk)
            self.where[pk] = (part, key)

        def refresh(self, table, pk):
            old = self.where.pop(pk, None)
            if old is not None:
                keys, pks = self.parts[old[0]]
                at = bisect.bisect_left(keys, old[1])
                if pks[at] != pk:
                    raise RuntimeError(f"index of {table.name} out of step at {pk}")
                del keys[at], pks[at]
            item = stored(table, pk)
            if item is not None:
                self.add(pk, item)

    def indexes(table):
        return table.__dict__.setdefault("_herald_indexes", {})

    def refresh(table, hash_value, range_value):
        for index in indexes(table).values():
            index.refresh(table, (hash_value, range_value))

    def index_for(table, name):
        schema = table.get_index(name).schema
        hashes = [k["AttributeName"] for k in schema if k["KeyType"] == "HASH"]
        ranges = [k["AttributeName"] for k in schema if k["KeyType"] == "RANGE"]
        if len(hashes) != 1 or len(ranges) != 1:
            return None
        index = indexes(table).get(name)
        if index is None or index.items_id != id(table.items):
            index = indexes(table)[name] = Index(table, hashes[0], ranges[0])
        return index

    def candidates(table, hash_key, range_comparison, range_objs, limit, start, forward, name, hash_conds, range_conds):
        if not name:
            part = table.items.get(hash_key) if hash_key is not None else None
            if part is None:
                return []
            return list(part.values()) if table.range_key_attr is not None else [part]
        if not any(i.name == name for i in table.all_indexes()):
            return None  # moto's own error
        index = index_for(table, name)
        if index is None or len(hash_conds or []) != 1 or hash_conds[0][0] != index.hash_attr:
            return None
        if len(range_conds or []) > 1 or (range_conds and range_conds[0][0] != index.range_attr):
            return None
        keys, pks = index.parts.get(hash_conds[0][1], ([], []))
        if start:
            if any(a not in start for a in index.order):
                return None
            after = tuple(DynamoType(start[a]) for a in index.order)
            at = bisect.bisect_right(keys, after) if forward else bisect.bisect_left(keys, after) - 1
        else:
            at = 0 if forward else len(keys) - 1
        chosen, matched, step = [], 0, 1 if forward else -1
        while 0 <= at < len(keys):
            item = stored(table, pks[at])
            if limit is not None and matched == limit:
                chosen.append(item)  # read, not returned: it makes the LastEvaluatedKey
                break
            value = item.attrs.get(index.range_attr)
            if not range_comparison or value.compare(range_comparison, range_objs):
                chosen.append(item)
                matched += 1
            elif matched:
                break  # past the run the key condition selects (a sort-key range is contiguous)
            at += step
        return chosen if forward else chosen[::-1]

    def query(self, hash_key, range_comparison, range_objs, limit, exclusive_start_key, scan_index_forward,
              projection_expressions, index_name=None, consistent_read=False, filter_expression=None,
              hash_key_conditions=None, range_key_conditions=None, **filter_kwargs):
        args = (hash_key, range_comparison, range_objs, limit, exclusive_start_key, scan_index_forward,
                projection_expressions, index_name, consistent_read, filter_expression)
        kwargs = dict(hash_key_conditions=hash_key_conditions, range_key_conditions=range_key_conditions,
                      **filter_kwargs)
        chosen = None
        if not filter_kwargs:
            chosen = candidates(self, hash_key, range_comparison, range_objs, limit, exclusive_start_key,
                                scan_index_forward is not False, index_name, hash_key_conditions,
                                range_key_conditions)
        if chosen is None:
            return original_query(self, *args, **kwargs)
        self.all_items = lambda: chosen  # shadows the method for this one call
        try:
            answer = original_query(self, *args, **kwargs)
        finally:
            del self.all_items
        if check:
            expected = original_query(self, *args, **kwargs)
            got = ([i.to_json() for i in answer[0]], answer[1], answer[2])
            want = ([i.to_json() for i in expected[0]], expected[1], expected[2])
            if got != want:
                raise RuntimeError(f"indexed query differs from moto's on {self.name}/{index_name}: {got} != {want}")
        return answer

    original_put, original_delete = tables.Table.put_item, tables.Table.delete_item
    original_update = models.DynamoDBBackend.update_item

    def put_item(self, item_attrs, *args, **kwargs):
        item = original_put(self, item_attrs, *args, **kwargs)
        refresh(self, item.hash_key, item.range_key)
        return item

    def delete_item(self, hash_key, range_key):
        item = original_delete(self, hash_key, range_key)
        refresh(self, hash_key, range_key)
        return item

    def update_item(self, table_name, key, *args, **kwargs):
        try:
            return original_update(self, table_name, key, *args, **kwargs)
        finally:
            table = self.tables.get(table_name)
            if table is not None and table.hash_key_attr in key:
                range_value = None
                if table.range_key_attr is not None and table.range_key_attr in key:
                    range_value = DynamoType(key[table.range_key_attr])
                refresh(table, DynamoType(key[table.hash_key_attr]), range_value)

    tables.Table.query = query
    tables.Table.put_item, tables.Table.delete_item = put_item, delete_item
    models.DynamoDBBackend.update_item = update_item


def patch_queues() -> None:
    """Make SendMessage and ReceiveMessage cost what they move, not what the queue holds.

    moto 5 builds every queue attribute whenever it reads one (on each SendMessage, for
    ContentBasedDeduplication; three times per received message, for MessageRetentionPeriod),
    and three of them count the queue's messages: sending or receiving n messages costs n^2 (the
    sweep's 100,000 publish jobs would take hours), and every count reads the clock twice per
    stored message; DeleteMessage scans the queue twice. Here those calls build only the
    attributes they read, a count reads the clock once, and a delete finds its message by its
    receipt handle. What each call answers is unchanged.
    """
    from moto.core.utils import camelcase_to_underscores
    from moto.sqs import models

    reading = threading.local()  # the attribute names the current call reads, when it says

    def queue_attributes(self):
        wanted = getattr(reading, "names", None)
        names = list(self.BASE_ATTRIBUTES)
        if self.fifo_queue:
            names += self.FIFO_ATTRIBUTES
        if self.kms_master_key_id:
            names += self.KMS_ATTRIBUTES
        result = {n: getattr(self, camelcase_to_underscores(n)) for n in names if wanted is None or n in wanted}
        if self.policy:
            result["Policy"] = self.policy
        if self.redrive_policy:
            result["RedrivePolicy"] = json.dumps(self.redrive_policy)
        return {k: str(v).lower() if isinstance(v, bool) else v for k, v in result.items()}

    def reads(names, call):
        def wrapper(self, *args, **kwargs):
            wanted = names(args, kwargs)
            if wanted is None:
                return call(self, *args, **kwargs)
            outer, reading.names = getattr(reading, "names", None), set(wanted)
            try:
                return call(self, *args, **kwargs)
            finally:
                reading.names = outer
        return wrapper

    def requested(args, kwargs):
        names = args[1] if len(args) > 1 else kwargs.get("attribute_names")
        return None if not names or "All" in names else names

    # Visible from the instant `visible_at` is reached (moto: strictly after it). On the wall clock
    # the difference is a millisecond; on a queue clock that stands still (`QueueClock`), a message
    # made visible again "at once" (ChangeMessageVisibility 0, as SQS documents it) would stay
    # hidden until the clock moved.
    def messages(self):
        now = models.unix_time_millis()
        return [m for m in self._messages if now >= m.visible_at and not now < m.delayed_until]

    def delayed(self):
        now = models.unix_time_millis()
        return sum(1 for m in self._messages if now < m.delayed_until)

    def not_visible(self):
        now = models.unix_time_millis()
        return sum(1 for m in self._messages if now < m.visible_at)

    def visible(self):
        return models.unix_time_millis() >= self.visible_at

    # Every receipt handle a message was given, to it: moto's DeleteMessage scans the queue twice.
    receipts = {}
    original_mark = models.Message.mark_received

    def mark_received(self, *args, **kwargs):
        original_mark(self, *args, **kwargs)
        receipts[self.receipt_handle] = self

    def delete_message(self, receipt_handle):
        if receipt_handle in self.deleted_messages:
            return  # already deleted: moto answers success again
        message = receipts.get(receipt_handle)
        if message is None or message not in self._messages:  # Message has no __eq__: identity
            raise models.ReceiptHandleIsInvalid()
        self._messages.remove(message)
        self.pending_messages.discard(message)
        self.deleted_messages.update(message.all_receipt_handles)
        for handle in message.all_receipt_handles:
            receipts.pop(handle, None)

    backend = models.SQSBackend
    models.Message.mark_received = mark_received
    models.Queue.delete_message = delete_message
    models.Queue.attributes = property(queue_attributes)
    models.Queue.messages = property(messages)
    models.Queue.approximate_number_of_messages_delayed = property(delayed)
    models.Queue.approximate_number_of_messages_not_visible = property(not_visible)
    models.Message.visible = property(visible)
    backend.send_message = reads(lambda a, k: {"ContentBasedDeduplication"}, backend.send_message)
    backend.get_queue_attributes = reads(requested, backend.get_queue_attributes)


class QueueClock:
    """WSGI middleware on the SQS server: a queue's time can be the test's, not the wall clock's.

    SQS's delays and visibility timeouts count in time. Tests run Herald on a clock they move (and
    the sandbox on the same one); without this, a retry's backoff (a delayed message) would take
    real seconds to come due, and a test would wait for it or skip the queue. A test sets its
    queues' time with `POST /_herald/queue-clock` `{"queues": [names], "at_ms": n}` (Unix
    milliseconds; never moved back) and the queues keep that time until set again (or, with
    `"running": true`, let it pass with the wall clock from there, as a test's clock that runs
    does): messages are stamped, delayed and hidden in it. Tests share one server, so each sets only its own queues;
    a queue never set keeps the wall clock. Only the millisecond clock moto's message timing
    reads (`moto.sqs.models.unix_time_millis`) follows a queue's time; long polls and retention
    keep real seconds, so a long poll still ends.
    """

    PATH = "/_herald/queue-clock"

    def __init__(self, app):
        from moto.sqs import models

        self.app = app
        # queue name -> (its time when set, Unix ms; the wall clock then if it runs, else None)
        self.times = {}
        current = threading.local()  # the queue the current backend call is about
        times = self.times
        real_millis = models.unix_time_millis

        def queue_time(queue):
            at, since = times[queue]
            return at if since is None else at + (real_millis() - since)

        def millis(*args):
            queue = getattr(current, "queue", None)
            return real_millis(*args) if args or queue not in times else queue_time(queue)

        self.queue_time = queue_time
        models.unix_time_millis = millis
        self.real_millis = real_millis

        def about_queue(call):
            def wrapper(self, queue_name, *args, **kwargs):
                outer, current.queue = getattr(current, "queue", None), queue_name
                try:
                    return call(self, queue_name, *args, **kwargs)
                finally:
                    current.queue = outer
            return wrapper

        backend = models.SQSBackend
        for name in (
            "send_message",
            "send_message_batch",
            "receive_message",
            "delete_message",
            "delete_message_batch",
            "change_message_visibility",
            "change_message_visibility_batch",
            "get_queue_attributes",
            "purge_queue",
        ):
            setattr(backend, name, about_queue(getattr(backend, name)))

    def __call__(self, environ, start_response):
        if environ.get("PATH_INFO") != self.PATH:
            return self.app(environ, start_response)
        length = int(environ.get("CONTENT_LENGTH") or 0)
        request = json.loads(environ["wsgi.input"].read(length) or b"{}")
        at = request.get("at_ms")
        queues = request.get("queues")
        running = request.get("running", False)
        if environ.get("REQUEST_METHOD") != "POST" or not isinstance(at, int) or not isinstance(queues, list):
            start_response("400 Bad Request", [("Content-Type", "text/plain")])
            return [b'POST {"queues": [names], "at_ms": unix_millis, "running": false}']
        for queue in queues:
            at_least = self.queue_time(queue) if queue in self.times else at
            self.times[queue] = (max(at, at_least), self.real_millis() if running else None)
        body = json.dumps({q: self.queue_time(q) for q in queues}).encode()
        start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
        return [body]


class DynamoFaults:
    """WSGI middleware on the DynamoDB server: the faults DynamoDB raises and moto never does.

    Tests control it per table (each test has its own) over `/_herald/faults` on the same port:
    `POST` a JSON list of faults, `DELETE ?table=NAME` to clear them; each answers the counts of
    faults raised for the table, by kind. A fault matches calls by operation (`UpdateItem`, `PutItem`,
    `TransactWriteItems`…; any when absent), table, and optionally a key prefix (`pk` starts with
    it), for `times` calls (every one when absent) or with a `probability` (seeded per table).
    Kinds, as DynamoDB answers them (developer guide, "Error handling with DynamoDB" and
    "Transaction conflict handling"; the TransactionCanceledException and TransactWriteItems API
    references; sources in docs/decisions.md, "DynamoDB's faults"):
    - `transaction_conflict`: 400 `TransactionConflictException` for a single-item write that met
      an ongoing transaction on the same item, `TransactionCanceledException` with the reason
      `TransactionConflict` for a transaction; nothing applied;
    - `throttling`: 400 `ThrottlingException`; `provisioned_throughput`: 400
      `ProvisionedThroughputExceededException`; nothing applied;
    - `internal_error_after_apply`: the call is applied, then answered 500 `InternalServerError`
      (a lost answer: the SDK retries, and the retry meets its own write).

    Also DynamoDB's `ClientRequestToken` rule, which moto lacks: a `TransactWriteItems` repeated
    with the same token within 10 minutes succeeds without being applied again (the same token with
    other items is `IdempotentParameterMismatchException`).
    """

    PREFIX = "com.amazonaws.dynamodb.v20120810#"
    KINDS = {
        "transaction_conflict": (400, PREFIX + "TransactionConflictException", "Transaction is ongoing for the item"),
        "throttling": (400, "com.amazon.coral.availability#ThrottlingException", "Rate of requests exceeds the allowed throughput."),
        "provisioned_throughput": (400, PREFIX + "ProvisionedThroughputExceededException", "The level of configured provisioned throughput for the table was exceeded."),
        "internal_error_after_apply": (500, PREFIX + "InternalServerError", "Internal server error"),
    }
    TOKEN_WINDOW = 600

    def __init__(self, app):
        import random

        from collections import OrderedDict

        self.app = app
        self.faults = []  # dicts: operation, table, key_prefix, kind, times, probability, raised
        # ClientRequestToken -> (time, digest of the request without it, status, headers, response),
        # oldest first, so expiry pops from the front (a transaction's cost must not grow with
        # the number of transactions before it).
        self.tokens = OrderedDict()
        self.random = random.Random(7)

    def __call__(self, environ, start_response):

        path = environ.get("PATH_INFO", "")
        if path.startswith("/_herald/faults"):
            return self.control(environ, start_response)
        target = environ.get("HTTP_X_AMZ_TARGET", "")
        operation = target.rsplit(".", 1)[-1] if target.startswith("DynamoDB_") else None
        if operation is None:
            return self.app(environ, start_response)
        length = int(environ.get("CONTENT_LENGTH") or 0)
        raw = environ["wsgi.input"].read(length) if length else b""
        environ["wsgi.input"] = __import__("io").BytesIO(raw)
        try:
            body = json.loads(raw or b"{}")
        except ValueError:
            body = {}
        if operation == "TransactWriteItems" and body.get("ClientRequestToken"):
            repeated = self.repeated_transaction(body)
            if repeated is not None:
                return self.answer(start_response, *repeated)
        fault = self.match(operation, body)
        if fault is None or fault["kind"] != "internal_error_after_apply":
            if fault is not None:
                return self.error(start_response, fault["kind"], operation, body)
            status, headers, response = self.call(environ)
            self.remember(operation, body, status, headers, response)
            return self.answer(start_response, status, headers, response)
        status, headers, response = self.call(environ)
        self.remember(operation, body, status, headers, response)
        return self.error(start_response, fault["kind"], operation, body)

    def call(self, environ):
        captured = {}

        def start(status, headers, exc_info=None):
            captured["status"], captured["headers"] = status, headers

        response = b"".join(self.app(environ, start))
        return captured["status"], captured["headers"], response

    @staticmethod
    def answer(start_response, status, headers, response):
        start_response(status, [(k, v) for k, v in headers if k.lower() != "content-length"] + [("Content-Length", str(len(response)))])
        return [response]

    def error(self, start_response, kind, operation, request):

        status, error_type, message = self.KINDS[kind]
        answer = {"__type": error_type, "message": message}
        if kind == "transaction_conflict" and operation == "TransactWriteItems":
            # A transaction that meets another is cancelled, its reasons one per item.
            items = request.get("TransactItems", [])
            reasons = [{"Code": "TransactionConflict", "Message": message}] + [{"Code": "None"}] * (len(items) - 1)
            answer = {
                "__type": self.PREFIX + "TransactionCanceledException",
                "Message": "Transaction cancelled, please refer cancellation reasons for specific reasons "
                + "[" + ", ".join(r["Code"] for r in reasons) + "]",
                "CancellationReasons": reasons,
            }
        body = json.dumps(answer).encode()
        reason = "500 Internal Server Error" if status == 500 else "400 Bad Request"
        headers = [("Content-Type", "application/x-amz-json-1.0"), ("x-amzn-RequestId", "herald-fault")]
        return self.answer(start_response, reason, headers, body)

    def tables(self, operation, body):
        if operation == "TransactWriteItems":
            return [
                (op.get("TableName"), (op.get("Key") or op.get("Item") or {}).get("pk", {}).get("S", ""))
                for item in body.get("TransactItems", [])
                for op in item.values()
            ]
        return [(body.get("TableName"), (body.get("Key") or body.get("Item") or {}).get("pk", {}).get("S", ""))]

    def match(self, operation, body):
        touched = self.tables(operation, body)
        for fault in self.faults:
            if fault.get("operation") not in (None, operation):
                continue
            prefix = fault.get("key_prefix") or ""
            if not any(table == fault["table"] and pk.startswith(prefix) for table, pk in touched):
                continue
            if fault.get("times") is not None and fault["raised"] >= fault["times"]:
                continue
            if fault.get("probability") is not None and self.random.random() >= fault["probability"]:
                continue
            fault["raised"] += 1
            return fault
        return None

    @staticmethod
    def digest(body):
        import hashlib

        rest = {k: v for k, v in body.items() if k != "ClientRequestToken"}
        return hashlib.sha256(json.dumps(rest, sort_keys=True).encode()).hexdigest()

    def repeated_transaction(self, body):
        import time

        token = body["ClientRequestToken"]
        now = time.monotonic()
        while self.tokens and now - next(iter(self.tokens.values()))[0] >= self.TOKEN_WINDOW:
            self.tokens.popitem(last=False)
        seen = self.tokens.get(token)
        if seen is None:
            return None
        if seen[1] != self.digest(body):

            error = json.dumps({"__type": self.PREFIX + "IdempotentParameterMismatchException", "message": "The request uses the same client token as a previous, but non-identical request."}).encode()
            return "400 Bad Request", [("Content-Type", "application/x-amz-json-1.0")], error
        return seen[2], seen[3], seen[4]

    def remember(self, operation, body, status, headers, response):
        import time

        if operation == "TransactWriteItems" and body.get("ClientRequestToken") and status.startswith("200"):
            entry = (time.monotonic(), self.digest(body), status, headers, response)
            self.tokens[body["ClientRequestToken"]] = entry

    def control(self, environ, start_response):
        from urllib.parse import parse_qs

        method = environ["REQUEST_METHOD"]
        table = parse_qs(environ.get("QUERY_STRING", "")).get("table", [None])[0]
        if method == "POST":
            length = int(environ.get("CONTENT_LENGTH") or 0)
            for fault in json.loads(environ["wsgi.input"].read(length) or b"[]"):
                if fault.get("kind") not in self.KINDS or not fault.get("table"):
                    return self.answer(start_response, "400 Bad Request", [("Content-Type", "text/plain")], b"fault needs a known kind and a table")
                fault["raised"] = 0
                self.faults.append(fault)
        raised = {}
        for fault in self.faults:
            if table in (None, fault["table"]):
                raised[fault["kind"]] = raised.get(fault["kind"], 0) + fault["raised"]
        if method == "DELETE":
            self.faults = [f for f in self.faults if f["table"] != table]
        return self.answer(start_response, "200 OK", [("Content-Type", "application/json")], json.dumps(raised).encode())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1", help="loopback address to bind")
    parser.add_argument("--port", type=int, default=0, help="port (0: any free port)")
    parser.add_argument("--single-threaded", action="store_true", help="serve one request at a time")
    parser.add_argument("--exit-with-parent", action="store_true", help="exit when the parent process dies")
    args = parser.parse_args()
    if args.host not in LOOPBACK:
        sys.exit(f"refusing to bind {args.host}: the local stack binds loopback only")

    # One log line per request drowns everything else; keep warnings and errors.
    logging.getLogger("werkzeug").setLevel(logging.WARNING)

    from moto.moto_server.werkzeug_app import DomainDispatcherApplication, MotoRequestHandler, create_backend_app
    from werkzeug.serving import BaseWSGIServer, make_server

    # moto closes the connection after every response, so every call is a new connection; under
    # a burst (hundreds of concurrent calls) werkzeug's listen backlog of 128 overflows and
    # clients see connect timeouts. Let the kernel queue them instead.
    BaseWSGIServer.request_queue_size = 4096

    if args.single_threaded:
        patch_transactions()
        patch_queries()
    else:
        patch_queues()
    app = DomainDispatcherApplication(create_backend_app)
    if args.single_threaded:
        # The DynamoDB server: faults are injected per table, in order (one request at a time).
        app = DynamoFaults(app)
    else:
        # The server with SQS: each test's queues may keep the test's time.
        app = QueueClock(app)
    server = make_server(
        args.host,
        args.port,
        app,
        threaded=not args.single_threaded,
        request_handler=MotoRequestHandler,
    )
    # Some moto services build URLs from MOTO_PORT; make it the port actually bound.
    os.environ["MOTO_PORT"] = str(server.server_port)
    if args.exit_with_parent:
        threading.Thread(target=watch_parent, args=(os.getppid(),), daemon=True).start()
    print(f"READY {server.server_port}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
