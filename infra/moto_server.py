#!/usr/bin/env python3
"""Serve moto (AWS emulation) on a loopback port for Herald's local stack and tests.

Herald runs two of these: DynamoDB alone on a single-threaded server, because moto's threaded
server does not make conditional updates atomic (over-admitted rate limits, lost updates), and
KMS + SQS on a threaded one, because a single-threaded server stalls every call behind an SQS
long poll.

The DynamoDB server also raises, when a test asks, the faults DynamoDB raises and moto never does
(`DynamoFaults`: transaction conflicts, throttling, lost answers, and the `ClientRequestToken` rule).

Prints `READY <port>` on stdout once it accepts connections (port 0 picks a free one).
With --exit-with-parent it exits when the process that started it dies, so a killed test run
leaves no server behind.
"""

import argparse
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
        import json

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
        import json

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
        import json

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
            import json

            error = json.dumps({"__type": self.PREFIX + "IdempotentParameterMismatchException", "message": "The request uses the same client token as a previous, but non-identical request."}).encode()
            return "400 Bad Request", [("Content-Type", "application/x-amz-json-1.0")], error
        return seen[2], seen[3], seen[4]

    def remember(self, operation, body, status, headers, response):
        import time

        if operation == "TransactWriteItems" and body.get("ClientRequestToken") and status.startswith("200"):
            entry = (time.monotonic(), self.digest(body), status, headers, response)
            self.tokens[body["ClientRequestToken"]] = entry

    def control(self, environ, start_response):
        import json
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
    app = DomainDispatcherApplication(create_backend_app)
    if args.single_threaded:
        # The DynamoDB server: faults are injected per table, in order (one request at a time).
        app = DynamoFaults(app)
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
