"""Round trips counted on the wire: a relay on a Unix socket in front of the test server."""

from __future__ import annotations

import os
import selectors
import socket
import tempfile
import threading


class TurnCounter:
    """A relay that counts round trips: a turn is the client sending after having received (or at
    the start of a connection). Pipelined statements sent together are one turn, whatever the client
    library does; the server's answer in several packets is still one turn."""

    def __init__(self, host: str, port: int):
        self.target = os.path.join(host, f".s.PGSQL.{port}")
        self.dir = tempfile.mkdtemp(prefix="farmops-relay-")
        self.port = port
        self.turns = 0
        self._lock = threading.Lock()
        self._server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._server.bind(os.path.join(self.dir, f".s.PGSQL.{port}"))
        self._server.listen(16)
        self._closed = False
        threading.Thread(target=self._accept, daemon=True).start()

    def dsn(self, dbname: str, user: str) -> str:
        """A libpq DSN that reaches ``dbname`` through the relay."""
        return f"host={self.dir} port={self.port} dbname={dbname} user={user}"

    def reset(self) -> int:
        """The turns counted since the last reset."""
        with self._lock:
            turns, self.turns = self.turns, 0
        return turns

    def close(self) -> None:
        """Stop accepting connections (relayed ones end with their client)."""
        self._closed = True
        self._server.close()

    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self._server.accept()
            except OSError:
                return
            upstream = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            upstream.connect(self.target)
            threading.Thread(target=self._relay, args=(client, upstream), daemon=True).start()

    def _relay(self, client: socket.socket, upstream: socket.socket) -> None:
        sel = selectors.DefaultSelector()
        sel.register(client, selectors.EVENT_READ, upstream)
        sel.register(upstream, selectors.EVENT_READ, client)
        last_from_client = False
        try:
            while True:
                for key, _ in sel.select():
                    data = key.fileobj.recv(65536)
                    if not data:
                        return
                    from_client = key.fileobj is client
                    if from_client and not last_from_client:
                        with self._lock:
                            self.turns += 1
                    last_from_client = from_client
                    key.data.sendall(data)
        except OSError:
            return
        finally:
            sel.close()
            client.close()
            upstream.close()
