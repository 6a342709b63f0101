#!/usr/bin/env python3
"""A job that sends a request and waits for the reply with no timeout.

    python3 examples/stuck_client.py [HOST:PORT]   (default 127.0.0.1:7777)

Against examples/silent_server.py it blocks in recv() forever. Shutting the
socket down from outside (`reach -p PID unstick HOST:PORT`) makes recv()
return end-of-file, and the job's own error path carries on: it reports the
failed request and finishes its work.
"""
import os
import socket
import sys

host, _, port = (sys.argv[1] if len(sys.argv) > 1 else "127.0.0.1:7777").rpartition(":")
conn = socket.create_connection((host, int(port)))
conn.sendall(b"GET /report\n")
print(f"client pid {os.getpid()}: sent a request to {host}:{port}, waiting for the reply", flush=True)
try:
    reply = conn.recv(4096)  # no timeout: this is where it gets stuck
    if reply:
        print(f"reply: {reply!r}", flush=True)
    else:
        print("the connection was shut down before any reply: recording the request as failed", flush=True)
except OSError as e:
    print(f"the request failed ({e}): recording it as failed", flush=True)
conn.close()
print("job finished", flush=True)
