"""The first process of a sandbox that has network: ``python -I -S
sandbox_relay.py SOCKET -- COMMAND...``.

Inside the sandbox's own network namespace there is only ``lo``. This
script listens on an ephemeral port of 127.0.0.1 there, relays each
connection to the worker's allow-listing proxy (the unix socket SOCKET,
bind-mounted in), runs COMMAND with ``HTTP_PROXY`` / ``HTTPS_PROXY`` (and
their lower-case forms) pointing at that port and ``NO_PROXY`` empty,
passes SIGTERM, SIGINT and SIGHUP on to it, and exits with its status
(128 + N for a command killed by signal N).

It is not a boundary: the command may talk to SOCKET itself, and the
proxy decides what passes. It is read by the worker and handed to the
sandbox as data; it imports nothing but the standard library.
"""

from __future__ import annotations

import os
import selectors
import signal
import socket
import subprocess
import sys
import threading

CHUNK = 64 * 1024
MAX_CONNECTIONS = 64
PROXY_VARIABLES = ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy")


def relay(client: socket.socket, path: str, slots: threading.BoundedSemaphore) -> None:
    try:
        with client, socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as upstream:
            upstream.connect(path)
            peers = {client: upstream, upstream: client}
            with selectors.DefaultSelector() as selector:
                for sock in peers:
                    selector.register(sock, selectors.EVENT_READ)
                while True:
                    for key, _ in selector.select():
                        source = key.fileobj
                        assert isinstance(source, socket.socket)
                        data = source.recv(CHUNK)
                        if not data:
                            return
                        peers[source].sendall(data)
    except OSError:
        return
    finally:
        slots.release()


def serve(listener: socket.socket, path: str) -> None:
    slots = threading.BoundedSemaphore(MAX_CONNECTIONS)
    while True:
        client, _ = listener.accept()
        if not slots.acquire(blocking=False):
            client.close()
            continue
        threading.Thread(target=relay, args=(client, path, slots), daemon=True).start()


def main(argv: list[str]) -> int:
    if len(argv) < 3 or argv[1] != "--":
        sys.stderr.write("usage: sandbox_relay.py SOCKET -- COMMAND...\n")
        return 2
    path, command = argv[0], argv[2:]
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    listener.listen(64)
    url = f"http://127.0.0.1:{listener.getsockname()[1]}"
    env = dict(os.environ)
    env.update(dict.fromkeys(PROXY_VARIABLES, url))
    env["NO_PROXY"] = env["no_proxy"] = ""
    threading.Thread(target=serve, args=(listener, path), daemon=True).start()
    try:
        child = subprocess.Popen(command, env=env)
    except OSError as exc:
        sys.stderr.write(f"sandbox: cannot run {command[0]}: {exc}\n")
        return 127

    def forward(signum: int, _frame: object) -> None:
        child.send_signal(signum)

    for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(signum, forward)
    status = child.wait()
    return 128 - status if status < 0 else status


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
