#!/usr/bin/env python3
"""Talk to examples/leaky_server.py.

    python3 examples/poke.py PORT [N]           N clients say hello and leave
    python3 examples/poke.py PORT announce TEXT  ask the server to announce
"""
import socket
import sys

port = int(sys.argv[1])
if len(sys.argv) > 2 and sys.argv[2] == "announce":
    with socket.create_connection(("127.0.0.1", port)) as conn:
        conn.sendall(f"announce {' '.join(sys.argv[3:]) or 'hello all'}\n".encode())
        print(conn.recv(4096).decode(errors="replace"), end="")
    sys.exit(0)
for _ in range(int(sys.argv[2]) if len(sys.argv) > 2 else 1):
    with socket.create_connection(("127.0.0.1", port)) as conn:
        conn.sendall(b"hello\n")
        print(conn.recv(4096).decode(errors="replace"), end="")
