#!/usr/bin/env python3
"""Target processes for the fds tests.

Usage: fixture.py MODE [ARGS]

Each mode sets up its descriptors, then prints one JSON line describing
them (the ready handshake) and serves commands read from stdin, one per
line, each answered by one JSON line. Unsolicited events are JSON lines
too, with an "event" key. EOF on stdin ends the process.

Modes:
  all       every kind of descriptor the fds() tests assert on
  listen    one listening TCP socket on 0.0.0.0 (for a netns test)
  blocked   a thread named "reader" blocked in recv() on a connected
            socket; a clock thread measures gaps and this process's
            TracerPid; prints {"event": "woke", ...} when recv returns
  many N    N TCP connections to itself, the server end of half of them
            closed, so N/2 client ends sit in CLOSE_WAIT
"""
import ctypes
import json
import os
import socket
import sys
import threading
import time


def say(obj):
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


def tcp_pair(listener):
    c = socket.create_connection(listener.getsockname())
    s, _ = listener.accept()
    return c, s


def close_wait_pair(listener):
    """A client socket in CLOSE_WAIT: its peer closed, the FIN arrived."""
    c, s = tcp_pair(listener)
    s.close()
    assert c.recv(1) == b""  # returns once the FIN is in: CLOSE_WAIT
    return c


def mode_all():
    keep = []
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    c1, s1 = tcp_pair(listener)
    s1.sendall(b"hello")  # 5 bytes waiting, unread, in c1
    # Make sure they arrived before anyone looks at rx_queue.
    c1.recv(5, socket.MSG_PEEK)
    cw = close_wait_pair(listener)
    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    udp.bind(("127.0.0.1", 0))
    u1, u2 = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    r, w = os.pipe()
    efd = os.eventfd(0)
    path = "/tmp/reach-fds-fixture-%d" % os.getpid()
    f = open(path, "w+b")
    f.write(b"0123456789")
    f.flush()
    f.seek(4)
    gone_path = path + ".deleted"
    gone = open(gone_path, "wb")
    os.unlink(gone_path)
    keep += [listener, c1, s1, cw, udp, u1, u2, f, gone]
    mapped = None
    try:
        v6 = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
        v6.connect(("::ffff:127.0.0.1", listener.getsockname()[1]))
        s6, _ = listener.accept()
        keep += [v6, s6]
        mapped = {"fd": v6.fileno(), "local_port": v6.getsockname()[1]}
    except OSError:
        pass
    port = listener.getsockname()[1]
    say({
        "pid": os.getpid(),
        "listen": {"fd": listener.fileno(), "port": port},
        "established": {"fd": c1.fileno(), "local_port": c1.getsockname()[1],
                        "remote_port": port, "peer_fd": s1.fileno()},
        "close_wait": {"fd": cw.fileno(), "local_port": cw.getsockname()[1]},
        "udp": {"fd": udp.fileno(), "port": udp.getsockname()[1]},
        "unix": {"fd": u1.fileno(), "peer_fd": u2.fileno()},
        "pipe": {"read_fd": r, "write_fd": w},
        "eventfd": {"fd": efd},
        "file": {"fd": f.fileno(), "path": path, "pos": 4},
        "deleted": {"fd": gone.fileno(), "path": gone_path},
        "mapped": mapped,
    })
    try:
        serve({})
    finally:
        os.unlink(path)


def mode_listen():
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("0.0.0.0", 0))
    listener.listen(16)
    say({"pid": os.getpid(), "fd": listener.fileno(),
         "port": listener.getsockname()[1]})
    serve({})


def mode_blocked():
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    listener.listen(4)
    c, s = tcp_pair(listener)
    state = {"max_gap_ms": 0.0, "tracer_max": 0, "stop": False}
    started = threading.Event()
    tid = {}

    def reader():
        libc = ctypes.CDLL(None)
        libc.prctl(15, b"reader", 0, 0, 0)  # PR_SET_NAME
        tid["tid"] = threading.get_native_id()
        started.set()
        try:
            data = c.recv(100)
            say({"event": "woke", "data": data.decode(errors="replace")})
        except OSError as e:
            say({"event": "woke", "error": e.errno})

    def clock():
        last = time.monotonic()
        status = "/proc/self/status"
        while not state["stop"]:
            now = time.monotonic()
            state["max_gap_ms"] = max(state["max_gap_ms"], (now - last) * 1000)
            last = now
            with open(status) as f:
                for line in f:
                    if line.startswith("TracerPid:"):
                        t = int(line.split()[1])
                        state["tracer_max"] = max(state["tracer_max"], t)
                        break

    t = threading.Thread(target=reader, daemon=True)
    t.start()
    started.wait()
    # The reader's tid is known; wait until it is really inside recv.
    while True:
        with open("/proc/self/task/%d/syscall" % tid["tid"]) as f:
            words = f.read().split()
        # recvfrom is 45 on x86-64.
        if words and words[0] == "45" and int(words[1], 16) == c.fileno():
            break
        time.sleep(0.001)  # fixture-side poll of its own thread, not a test sleep
    threading.Thread(target=clock, daemon=True).start()
    say({"pid": os.getpid(), "fd": c.fileno(), "peer_fd": s.fileno(),
         "reader_tid": tid["tid"]})

    def status(_):
        return {"max_gap_ms": state["max_gap_ms"],
                "tracer_max": state["tracer_max"]}

    serve({"status": status, "reset": lambda _: state.update(max_gap_ms=0.0) or {}})


def mode_many(n):
    import resource
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < n * 2 + 64:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, n * 2 + 64), hard))
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    listener.listen(1024)
    keep = []
    for i in range(n):
        if i % 2 == 0:
            keep.append(close_wait_pair(listener))
        else:
            keep.extend(tcp_pair(listener))
    say({"pid": os.getpid(), "close_wait": n // 2 + n % 2,
         "port": listener.getsockname()[1]})
    serve({})


def serve(commands):
    for line in sys.stdin:
        words = line.split()
        if not words:
            continue
        handler = commands.get(words[0])
        say(handler(words[1:]) if handler else {"error": "unknown command"})


if __name__ == "__main__":
    mode = sys.argv[1]
    if mode == "all":
        mode_all()
    elif mode == "listen":
        mode_listen()
    elif mode == "blocked":
        mode_blocked()
    elif mode == "many":
        mode_many(int(sys.argv[2]))
    else:
        sys.exit("unknown mode " + mode)
