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
