"""The only network a sandbox gets: an allow-listing HTTP forward proxy.

A sandboxed command has a network namespace of its own with nothing in it
but ``lo``. When it needs an index (build requirements, dependencies), the
worker runs this proxy in its own process, on a unix socket that is
bind-mounted into the sandbox; the sandbox's first process
(``sandbox_relay.py``) relays a loopback port to that socket and points
``HTTP_PROXY`` / ``HTTPS_PROXY`` at it. The proxy allows:

* ``CONNECT host:port`` for the pairs in the allowance only (an https
  index: ``pypi.org:443``, ``files.pythonhosted.org:443``). The proxy
  resolves the name itself and connects to the address it checked, so the
  command never chooses where a name leads; a name that resolves to a
  loopback, private or link-local address is refused (DNS rebinding onto
  the worker's PostgreSQL or Redis, or a cloud's metadata service) unless
  that exact host was allowed as internal;
* ``GET`` and ``HEAD`` of absolute ``http://`` URLs under an allowed
  prefix (a loopback index such as ``http://127.0.0.1:3141/user1/dev/``),
  sent on with ``Connection: close`` and without a body: no upload, no
  other method, nothing outside the prefix, no ``..`` out of it.

Everything else is answered ``403`` with a one-line reason, and every
request, allowed or refused, is reported through a callback (the job log:
``sandbox network: refused CONNECT 127.0.0.1:5432: ...``). Connections are
bounded in number, a silent one is closed after ``idle_timeout``, and
``stop()`` ends them all when the command ends.
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import selectors
import socket
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlsplit

HEAD_LIMIT = 32 * 1024
CHUNK = 64 * 1024
# Where PyPI-like indexes keep their files: their simple pages link there.
FILE_HOSTS = {"pypi.org": "files.pythonhosted.org", "test.pypi.org": "test-files.pythonhosted.org"}
# Not ``ipaddress``'s is_global: an egress gateway may answer public names
# from documentation ranges (203.0.113.0/24), and that is no reason to
# refuse. These are the ranges that lead back into the host or its LAN.
INTERNAL_NETWORKS = tuple(
    ipaddress.ip_network(net)
    for net in (
        "0.0.0.0/8",
        "10.0.0.0/8",
        "100.64.0.0/10",
        "127.0.0.0/8",
        "169.254.0.0/16",
        "172.16.0.0/12",
        "192.168.0.0/16",
        "224.0.0.0/4",
        "255.255.255.255/32",
        "::/127",
        "fc00::/7",
        "fe80::/10",
        "ff00::/8",
    )
)
_HOP_BY_HOP = {
    "connection",
    "keep-alive",
    "proxy-authorization",
    "proxy-authenticate",
    "proxy-connection",
    "te",
    "trailer",
}


class Refused(Exception):
    """A request the allowance does not cover; its text is the reason."""


@dataclass(frozen=True)
class ProxyEvent:
    """One request the proxy saw, for the job log."""

    allowed: bool
    method: str
    target: str
    reason: str = ""
    failed: bool = False  # allowed, but the connection or the request failed

    @property
    def line(self) -> str:
        verdict = "failed" if self.failed else "allowed" if self.allowed else "refused"
        return f"sandbox network: {verdict} {self.method} {self.target}" + (f": {self.reason}" if self.reason else "")


@dataclass(frozen=True)
class NetworkAllowance:
    """What a sandbox may reach.

    ``connect`` holds ``host:port`` pairs for CONNECT (lower-case host, IPv6
    in brackets), ``http_prefixes`` the ``http://host:port/path/`` prefixes
    that GET and HEAD may read, and ``internal_hosts`` the names allowed to
    resolve to a loopback or private address (an index on the LAN). An IP
    literal in either list is that exact host, and allowed as it is.
    """

    connect: frozenset[str] = frozenset()
    http_prefixes: tuple[str, ...] = ()
    internal_hosts: frozenset[str] = frozenset()

    @classmethod
    def for_indexes(cls, urls: Iterable[str], *, internal_hosts: Iterable[str] = ()) -> NetworkAllowance:
        """The allowance that reads these simple-index URLs: CONNECT to each
        https host (and the host PyPI keeps its files on), GET under each
        http index's root (the URL without its ``simple/`` or ``+simple/``)."""
        connect: set[str] = set()
        prefixes: list[str] = []
        for url in urls:
            parts = urlsplit(url)
            host = (parts.hostname or "").lower()
            if not host:
                raise ValueError(f"{url!r} has no host")
            if parts.scheme == "https":
                connect.add(_pair(host, parts.port or 443))
                if host in FILE_HOSTS:
                    connect.add(_pair(FILE_HOSTS[host], 443))
            elif parts.scheme == "http":
                path = parts.path if parts.path.endswith("/") else parts.path + "/"
                for tail in ("+simple/", "simple/"):
                    if path.endswith("/" + tail):
                        path = path[: -len(tail)]
                        break
                prefixes.append(_canonical(host, parts.port or 80, path))
            else:
                raise ValueError(f"{url!r} is neither http nor https")
        return cls(frozenset(connect), tuple(prefixes), frozenset(h.lower() for h in internal_hosts))


def _pair(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _canonical(host: str, port: int, path: str) -> str:
    return f"http://{_pair(host, port)}{path}"


def _internal(address: str) -> bool:
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return any(ip in net for net in INTERNAL_NETWORKS)


def _is_literal(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


class SandboxProxy:
    """The proxy of one sandboxed command, listening on ``socket_path``.

    ``report`` is called from the proxy's threads with each request's
    event; ``resolve`` gives a name's addresses (the system's resolver)."""

    def __init__(
        self,
        socket_path: Path,
        allowance: NetworkAllowance,
        report: Callable[[ProxyEvent], object],
        *,
        max_connections: int = 32,
        idle_timeout: float = 60.0,
        connect_timeout: float = 15.0,
        resolve: Callable[[str, int], list[str]] | None = None,
    ) -> None:
        self.socket_path = socket_path
        self.allowance = allowance
        self.report = report
        self.idle_timeout = idle_timeout
        self.connect_timeout = connect_timeout
        self.resolve = resolve or _resolve
        self._listener: socket.socket | None = None
        self._stopping = threading.Event()
        self._slots = threading.BoundedSemaphore(max_connections)
        self._open: set[socket.socket] = set()
        self._lock = threading.Lock()
        self._threads: list[threading.Thread] = []
        # Written to by stop(): wakes the accepting thread at once.
        self._wake = os.pipe()

    def start(self) -> None:
        """Listen on the socket (anyone who can reach the file may connect:
        it lives in a private folder, and the sandbox sees it through a
        bind mount) and accept in a thread."""
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        with contextlib.suppress(FileNotFoundError):
            self.socket_path.unlink()
        listener.bind(str(self.socket_path))
        # The sandbox may run under another uid: it needs write permission
        # on the socket to connect. The folder around it is the worker's own.
        os.chmod(self.socket_path, 0o666)  # noqa: S103 (in a folder only the worker can enter)
        listener.listen(64)
        self._listener = listener
        thread = threading.Thread(target=self._accept, name="sandbox-proxy", daemon=True)
        thread.start()
        self._threads.append(thread)

    def stop(self) -> None:
        """Stop accepting, close every open connection, wait for the threads."""
        self._stopping.set()
        os.write(self._wake[1], b"x")
        with self._lock:
            for conn in list(self._open):
                with contextlib.suppress(OSError):
                    conn.shutdown(socket.SHUT_RDWR)
        for thread in list(self._threads):
            thread.join(timeout=5)
        if self._listener is not None:
            self._listener.close()
        for fd in self._wake:
            os.close(fd)
        with contextlib.suppress(FileNotFoundError):
            self.socket_path.unlink()

    def _accept(self) -> None:
        assert self._listener is not None
        with selectors.DefaultSelector() as selector:
            selector.register(self._listener, selectors.EVENT_READ)
            selector.register(self._wake[0], selectors.EVENT_READ)
            while True:
                ready = {key.fileobj for key, _ in selector.select()}
                if self._wake[0] in ready or self._stopping.is_set():
                    return
                try:
                    conn, _ = self._listener.accept()
                except OSError:
                    return
                self._admit(conn)

    def _admit(self, conn: socket.socket) -> None:
        """Serve ``conn`` in a thread of its own, if a slot is free."""
        if not self._slots.acquire(blocking=False):
            self._answer(conn, 503, "too many connections at once")
            self.report(ProxyEvent(False, "connection", "(any)", "too many connections at once"))
            conn.close()
            return
        thread = threading.Thread(target=self._serve, args=(conn,), name="sandbox-proxy-conn", daemon=True)
        self._threads = [t for t in self._threads if t.is_alive()]
        self._threads.append(thread)
        thread.start()

    def _track(self, sock: socket.socket) -> None:
        with self._lock:
            self._open.add(sock)
        if self._stopping.is_set():
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    def _untrack(self, sock: socket.socket) -> None:
        with self._lock:
            self._open.discard(sock)
        sock.close()

    def _serve(self, conn: socket.socket) -> None:
        self._track(conn)
        upstream: socket.socket | None = None
        method, target = "request", "(unreadable)"
        try:
            conn.settimeout(self.idle_timeout)
            head, rest = _read_head(conn)
            method, target, version, headers = _parse_request(head)
            if method == "CONNECT":
                upstream = self._connect_checked(*self._connect_target(target))
                self._track(upstream)
                conn.sendall(f"{version} 200 Connection established\r\n\r\n".encode())
                self.report(ProxyEvent(True, method, target))
                _pump(conn, upstream, rest, self.idle_timeout)
            else:
                upstream, request = self._forward_request(method, target, headers, rest)
                self._track(upstream)
                upstream.sendall(request)
                self.report(ProxyEvent(True, method, target))
                _relay_response(upstream, conn, self.idle_timeout)
        except Refused as exc:
            self.report(ProxyEvent(False, method, target, str(exc)))
            self._answer(conn, 403, f"sandbox network: refused {method} {target}: {exc}")
        except ValueError as exc:
            self.report(ProxyEvent(False, method, target, f"not a request the proxy understands: {exc}"))
            self._answer(conn, 400, f"sandbox network: not a request the proxy understands: {exc}")
        except OSError as exc:
            self.report(ProxyEvent(True, method, target, str(exc), failed=True))
            self._answer(conn, 502, f"sandbox network: {method} {target} failed: {exc}")
        finally:
            if upstream is not None:
                self._untrack(upstream)
            self._untrack(conn)
            self._slots.release()

    @staticmethod
    def _answer(conn: socket.socket, status: int, text: str) -> None:
        reason = {403: "Forbidden", 502: "Bad Gateway", 503: "Service Unavailable", 400: "Bad Request"}[status]
        body = (text.replace("\r", " ").replace("\n", " ") + "\n").encode()
        head = f"HTTP/1.1 {status} {reason}\r\nContent-Type: text/plain\r\nContent-Length: {len(body)}\r\nConnection: close\r\n\r\n"
        with contextlib.suppress(OSError):
            conn.sendall(head.encode() + body)

    def _connect_target(self, target: str) -> tuple[str, int]:
        host, _, port_text = target.rpartition(":")
        host = host.lower()
        if not port_text.isdigit() or not host:
            raise Refused("CONNECT needs host:port")
        if host.startswith("[") and host.endswith("]"):
            host = host[1:-1]
        port = int(port_text)
        if _pair(host, port) not in self.allowance.connect:
            raise Refused("not an allowed host:port")
        return host, port

    def _connect_checked(self, host: str, port: int) -> socket.socket:
        """Connect to an address of ``host`` that the rules allow; the same
        address that was checked, so a second lookup cannot lead elsewhere."""
        exact = _is_literal(host) or host in self.allowance.internal_hosts
        addresses = [host] if _is_literal(host) else self.resolve(host, port)
        if not addresses:
            raise Refused(f"{host} does not resolve")
        if not exact and any(_internal(a) for a in addresses):
            internal = next(a for a in addresses if _internal(a))
            raise Refused(f"{host} resolves to the internal address {internal}")
        last: OSError | None = None
        for address in addresses:
            family = socket.AF_INET6 if ":" in address else socket.AF_INET
            sock = socket.socket(family, socket.SOCK_STREAM)
            sock.settimeout(self.connect_timeout)
            try:
                sock.connect((address, port))
            except OSError as exc:
                sock.close()
                last = exc
                continue
            sock.settimeout(self.idle_timeout)
            return sock
        raise OSError(f"could not connect to {host}:{port}: {last}")

    def _forward_request(
        self, method: str, target: str, headers: list[tuple[str, str]], rest: bytes
    ) -> tuple[socket.socket, bytes]:
        """The upstream connection and the request to send on it, for a GET
        or HEAD of an http URL under an allowed prefix; Refused otherwise."""
        if not target.lower().startswith("http://"):
            raise Refused("only CONNECT, or GET and HEAD of an http:// URL")
        if method not in {"GET", "HEAD"}:
            raise Refused("only GET and HEAD pass (nothing is uploaded from a sandbox)")
        parts = urlsplit(target)
        host = (parts.hostname or "").lower()
        if not host or "@" in parts.netloc:
            raise Refused("the URL has no host, or carries credentials")
        port = parts.port or 80
        path = parts.path or "/"
        decoded = unquote(path)
        if "\\" in decoded or any(seg in {".", ".."} for seg in decoded.split("/")) or "%2f" in path.lower():
            raise Refused("the path is not in canonical form")
        url = _canonical(host, port, path)
        if not any(url.startswith(prefix) for prefix in self.allowance.http_prefixes):
            raise Refused("not under an allowed URL prefix")
        for name, value in headers:
            lowered = name.lower()
            if lowered == "transfer-encoding" or lowered == "upgrade":
                raise Refused(f"{name} is not allowed")
            if lowered == "content-length" and value.strip() != "0":
                raise Refused("a request with a body is not allowed")
        if rest:
            raise Refused("a request with a body is not allowed")
        upstream = self._connect_checked(host, port)
        # The Host is the URL's: a client's own Host could pick another site on that server.
        kept = [f"{name}: {value}" for name, value in headers if name.lower() not in {*_HOP_BY_HOP, "host"}]
        line = f"{method} {path}{'?' + parts.query if parts.query else ''} HTTP/1.1"
        host_header = f"Host: {_pair(host, port) if port != 80 else host}"
        request = "\r\n".join([line, host_header, *kept, "Connection: close"]) + "\r\n\r\n"
        return upstream, request.encode("latin-1")


def _resolve(host: str, port: int) -> list[str]:
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


def _read_head(sock: socket.socket) -> tuple[bytes, bytes]:
    """The request head (up to the blank line) and whatever came after it."""
    data = b""
    while b"\r\n\r\n" not in data:
        if len(data) > HEAD_LIMIT:
            raise ValueError("request head too large")
        chunk = sock.recv(CHUNK)
        if not chunk:
            raise ValueError("connection closed before a request")
        data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    return head, rest


def _parse_request(head: bytes) -> tuple[str, str, str, list[tuple[str, str]]]:
    lines = head.decode("latin-1").split("\r\n")
    parts = lines[0].split(" ")
    if len(parts) != 3 or not parts[2].startswith("HTTP/1."):
        raise ValueError(f"not an HTTP/1 request line: {lines[0][:100]!r}")
    headers = []
    for line in lines[1:]:
        name, sep, value = line.partition(":")
        if not sep or not name or name != name.strip():
            raise ValueError(f"malformed header line: {line[:100]!r}")
        headers.append((name, value.strip()))
    return parts[0].upper(), parts[1], parts[2], headers


def _relay_response(upstream: socket.socket, client: socket.socket, idle: float) -> None:
    """Send the response back with ``Connection: close`` in its head (the
    client must not reuse a connection the proxy closes), then its body
    until the server closes."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = upstream.recv(CHUNK)
        if not chunk:
            client.sendall(data)
            return
        data += chunk
        if len(data) > HEAD_LIMIT:
            raise OSError("the server's response head is too large")
    head, _, body = data.partition(b"\r\n\r\n")
    lines = [line for line in head.split(b"\r\n") if not line.lower().startswith((b"connection:", b"keep-alive:"))]
    client.sendall(b"\r\n".join([*lines, b"Connection: close"]) + b"\r\n\r\n" + body)
    _pump(upstream, client, b"", idle, one_way=True)


def _pump(a: socket.socket, b: socket.socket, pending: bytes, idle: float, *, one_way: bool = False) -> None:
    """Copy bytes both ways (or from ``a`` to ``b`` only) until one side
    closes or both stay silent for ``idle`` seconds. ``pending`` is what
    ``a`` sent already, for ``b``."""
    if pending:
        b.sendall(pending)
    peers = {a: b} if one_way else {a: b, b: a}
    with selectors.DefaultSelector() as selector:
        for sock in peers:
            selector.register(sock, selectors.EVENT_READ)
        while True:
            ready = selector.select(timeout=idle)
            if not ready:
                return
            for key, _ in ready:
                source = key.fileobj
                assert isinstance(source, socket.socket)
                data = source.recv(CHUNK)
                if not data:
                    return
                peers[source].sendall(data)
