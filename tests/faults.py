"""Real network faults on loopback: a TCP proxy that can be cut and restored.

Placed between a connector and its database, it lets a test make the ERP
unreachable (connection refused, established connections dropped) and then
reachable again, without touching the database server itself.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


class TcpProxy:
    """``host`` is the address it listens on (a bridge's, to be reached from
    network namespaces); ``delay`` holds each chunk the server sends for that
    many seconds, a slow link that keeps a run in the middle for a while."""

    def __init__(
        self,
        target_port: int,
        port: int | None = None,
        target_host: str = "127.0.0.1",
        host: str = "127.0.0.1",
        delay: float = 0.0,
    ):
        self.target = (target_host, target_port)
        self.host = host
        self.delay = delay
        self.port = port or free_port(host)
        self._listener: socket.socket | None = None
        self._conns: set[socket.socket] = set()
        self._lock = threading.Lock()

    def start(self) -> TcpProxy:
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind((self.host, self.port))
        listener.listen(64)
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()
        return self

    def stop(self) -> None:
        """Refuse new connections and drop every established one."""
        listener, self._listener = self._listener, None
        if listener is not None:
            with contextlib.suppress(OSError):
                listener.shutdown(socket.SHUT_RDWR)
            listener.close()
        with self._lock:
            conns, self._conns = self._conns, set()
        for conn in conns:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
            conn.close()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(self.target, timeout=5)
                upstream.settimeout(None)
            except OSError:
                client.close()
                continue
            if self.host != "127.0.0.1":
                self._as_the_server(client)
            with self._lock:
                self._conns.update((client, upstream))
            for a, b, answers in ((client, upstream, False), (upstream, client, True)):
                threading.Thread(target=self._pipe, args=(a, b, answers), daemon=True).start()

    @staticmethod
    def _as_the_server(client: socket.socket) -> None:
        """Give the socket facing the client what the server's own socket
        has: the hub asks PostgreSQL for keepalives and a 25 s TCP user
        timeout on its end (hub.db.SERVER_SIDE_NETWORK). Without them here, a
        client cut off by a partition would leave this proxy, not the
        server, waiting on it for ever, and the server's limits unused."""
        client.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
        client.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE, 10)
        client.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPINTVL, 5)
        client.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPCNT, 3)
        client.setsockopt(socket.IPPROTO_TCP, socket.TCP_USER_TIMEOUT, 25000)

    def _pipe(self, src: socket.socket, dst: socket.socket, answers: bool = False) -> None:
        try:
            while data := src.recv(65536):
                if answers and self.delay:
                    time.sleep(self.delay)
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)
