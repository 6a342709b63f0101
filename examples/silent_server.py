#!/usr/bin/env python3
"""A server that accepts connections, reads requests and never answers.

    python3 examples/silent_server.py [PORT]     (default 7777; 0 picks one)

Run examples/stuck_client.py against it: the client waits for a reply
forever. That is incident 1 of reach's design: a job stuck for hours in
read() on a socket whose peer went silent.
"""
import socket
import sys
import threading

port = int(sys.argv[1]) if len(sys.argv) > 1 else 7777
server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
server.bind(("127.0.0.1", port))
server.listen(16)
host, port = server.getsockname()
print(f"silent server on {host}:{port}: accepting, never answering", flush=True)


def swallow(conn):
    # Read whatever comes and say nothing; keep the connection open.
    with conn:
        while conn.recv(4096):
            pass


while True:
    conn, peer = server.accept()
    print(f"accepted {peer[0]}:{peer[1]}", flush=True)
    threading.Thread(target=swallow, args=(conn,), daemon=True).start()
