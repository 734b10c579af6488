#!/usr/bin/env python3
"""Serve moto (AWS emulation) on a loopback port for Herald's local stack and tests.

Herald runs two of these: DynamoDB alone on a single-threaded server, because moto's threaded
server does not make conditional updates atomic (over-admitted rate limits, lost updates), and
KMS + SQS on a threaded one, because a single-threaded server stalls every call behind an SQS
long poll.

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
