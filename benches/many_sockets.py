#!/usr/bin/env python3
"""A process holding about N TCP sockets over loopback, for benches/fds.sh.

Usage: many_sockets.py [N]   (default 8000)

Opens one listener and N/2 connections to it, keeping both ends (so N
sockets plus the listener), then half of the client ends' peers are closed
to leave those in CLOSE_WAIT. Prints "ready PID" and waits until stdin
closes.
"""
import resource
import socket
import sys

n = int(sys.argv[1]) if len(sys.argv) > 1 else 8000
soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
need = n + 64
if soft < need:
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(need, hard), hard))

listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
listener.bind(("127.0.0.1", 0))
listener.listen(4096)
addr = listener.getsockname()
keep = []
for _ in range(n // 2):
    c = socket.create_connection(addr)
    s, _ = listener.accept()
    keep.append((c, s))
print("ready", flush=True)
sys.stdin.read()
