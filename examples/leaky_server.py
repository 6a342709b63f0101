#!/usr/bin/env python3
"""A server with two classic bugs, for reach's incident 2.

    python3 examples/leaky_server.py [PORT]      (default 7778; 0 picks one)

Protocol, one line per request:
    hello            the server answers "hi"
    announce TEXT    the server writes TEXT to every connection it holds

Bug 1: when a client hangs up, the server never closes its end, so each
finished client leaves a connection in CLOSE_WAIT (see `fds()` in reach).
Bug 2: SIGPIPE is left at its default, as in a C program (Python itself
ignores it; this restores the default). An "announce" writes to the leaked
connections; their peers are gone, answer with a reset, and the next write
raises SIGPIPE, which kills the server.

The fix without a restart: `reach -p PID ignore-sigpipe` (writes now fail
with EPIPE, which the server handles by dropping the connection) and
`reach -p PID reap-close-wait` (shuts the leaked connections down).
"""
import os
import selectors
import signal
import socket
import sys
import time

signal.signal(signal.SIGPIPE, signal.SIG_DFL)

port = int(sys.argv[1]) if len(sys.argv) > 1 else 7778
server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
server.bind(("127.0.0.1", port))
server.listen(64)
host, port = server.getsockname()
print(f"leaky server pid {os.getpid()} on {host}:{port}", flush=True)

sel = selectors.DefaultSelector()
sel.register(server, selectors.EVENT_READ)
conns = []  # every connection ever accepted and not dropped on an error


def announce(text):
    # Two writes with a pause, like a heartbeat: the first reaches a gone
    # peer, whose kernel answers with a reset; the second then fails.
    for part in (text, "\n"):
        for conn in list(conns):
            try:
                conn.sendall(part.encode())
            except OSError as e:
                print(f"dropping a connection: {e.strerror}", flush=True)
                conns.remove(conn)
                conn.close()
        time.sleep(0.2)
    print(f"announced to {len(conns)} connections", flush=True)


while True:
    for key, _ in sel.select():
        if key.fileobj is server:
            conn, _ = server.accept()
            conns.append(conn)
            sel.register(conn, selectors.EVENT_READ)
            continue
        conn = key.fileobj
        data = conn.recv(4096)
        if not data:
            # Bug 1: the client hung up and we forget to close().
            sel.unregister(conn)
            print(f"client left; {len(conns)} connections held", flush=True)
            continue
        for line in data.decode(errors="replace").splitlines():
            if line.startswith("announce "):
                announce(line[len("announce "):])
            else:
                conn.sendall(b"hi\n")
