"""How the server meets its clients: listening sockets (unix, TCP) and a non-blocking transport
over a connected socket or the process's stdin/stdout, waited on with ``poll``.

A unix socket is created with the requested mode from the start (the umask is set around
``bind``, then ``chmod`` confirms it). An existing path is probed before anything is removed: a
socket nobody accepts on (connect refused) is stale and replaced; a live socket, or a path that is
not a socket, is left alone and the server refuses to start. TCP binds exactly the address given
(``PORT`` alone means 127.0.0.1).
"""

from __future__ import annotations

import contextlib
import os
import select
import socket
import stat
import sys
from pathlib import Path

from edgeser.errors import EdgeserError

RECV_BYTES = 64 * 1024


class ServeError(EdgeserError):
    """The server cannot start or listen: one sentence (exit 1)."""


def log(message: str) -> None:
    print(f"edgeser: {message}", file=sys.stderr, flush=True)


class Gone(Exception):
    """The peer is gone (reset, broken pipe)."""


class Transport:
    """Bytes to and from one client, non-blocking, each direction waited on with a timeout so
    the reader and writer threads can share it and notice a drain or a dead peer."""

    def __init__(self, rfd: int, wfd: int, name: str, sock: socket.socket | None = None):
        self.rfd, self.wfd, self.name, self._sock = rfd, wfd, name, sock
        if sock is not None:
            sock.setblocking(False)
        else:
            os.set_blocking(rfd, False)
            os.set_blocking(wfd, False)
        self._rpoll = select.poll()
        self._rpoll.register(rfd, select.POLLIN)
        self._wpoll = select.poll()
        self._wpoll.register(wfd, select.POLLOUT)

    @classmethod
    def of_socket(cls, sock: socket.socket, name: str) -> "Transport":
        return cls(sock.fileno(), sock.fileno(), name, sock)

    def recv(self, timeout: float) -> bytes | None:
        """Bytes; b"" at EOF; None when nothing came within ``timeout``. Raises Gone."""
        if not self._rpoll.poll(timeout * 1000):
            return None
        try:
            return self._sock.recv(RECV_BYTES) if self._sock else os.read(self.rfd, RECV_BYTES)
        except (BlockingIOError, InterruptedError):
            return None
        except OSError:
            raise Gone from None

    def send(self, data: memoryview, timeout: float) -> int:
        """Bytes written (0 when the peer took nothing within ``timeout``). Raises Gone."""
        if not self._wpoll.poll(timeout * 1000):
            return 0
        try:
            return self._sock.send(data) if self._sock else os.write(self.wfd, data)
        except (BlockingIOError, InterruptedError):
            return 0
        except OSError:
            raise Gone from None

    def close(self) -> None:
        if self._sock is not None:
            # Our side first, then discard what the peer already sent: closing with unread
            # bytes would reset the connection and could destroy the last records in flight.
            with contextlib.suppress(OSError):
                self._sock.shutdown(socket.SHUT_WR)
                for _ in range(16):  # bounded: a peer that keeps sending is simply reset
                    if not self._sock.recv(RECV_BYTES):
                        break
            self._sock.close()
        else:
            for fd in (self.rfd, self.wfd):
                with contextlib.suppress(OSError):
                    os.set_blocking(fd, True)



def parse_tcp(text: str) -> tuple[str, int]:
    """``PORT`` (loopback), ``HOST:PORT`` or ``[V6]:PORT``; raises ValueError with a sentence."""
    host, sep, port = text.rpartition(":")
    if not sep:
        host, port = "127.0.0.1", text
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    if not host:
        raise ValueError(f"{text!r} has no address before the port; give HOST:PORT, e.g. "
                         "127.0.0.1:8765 (0.0.0.0 listens on every interface).")
    if not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ValueError(f"{text!r} does not end in a port number (0 to 65535).")
    return host, int(port)


def unix_listener(path: Path, mode: int) -> tuple[socket.socket, tuple[int, int]]:
    """Listen on ``path`` with ``mode``: a stale socket file (nobody accepts on it) is replaced,
    a live one or any other file is left alone (ServeError)."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        st = None
    except OSError as err:
        raise ServeError(f"{path}: cannot be inspected ({err.strerror}).") from None
    if st is not None:
        if not stat.S_ISSOCK(st.st_mode):
            raise ServeError(f"{path}: exists and is not a socket; remove it or choose another "
                             "--socket.")
        probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        probe.settimeout(2.0)
        try:
            probe.connect(str(path))
        except (ConnectionRefusedError, FileNotFoundError):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)
            log(f"replaced the stale socket {path} (nothing was listening on it).")
        except OSError as err:
            raise ServeError(f"{path}: an existing socket that cannot be probed "
                             f"({err.strerror or err}); remove it or choose another "
                             "--socket.") from None
        else:
            raise ServeError(f"{path}: another server is listening on this socket; stop it or "
                             "choose another --socket.")
        finally:
            probe.close()
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    old = os.umask(0o777 & ~mode)  # the file is created with `mode` (no window with a wider one)
    try:
        sock.bind(str(path))
    except OSError as err:
        sock.close()
        raise ServeError(f"{path}: cannot listen here ({err.strerror or err}).") from None
    finally:
        os.umask(old)
    os.chmod(path, mode)
    sock.listen(128)
    st = os.stat(path)
    return sock, (st.st_dev, st.st_ino)


def tcp_listener(host: str, port: int) -> socket.socket:
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM,
                                   flags=socket.AI_PASSIVE)
    except socket.gaierror as err:
        raise ServeError(f"{host}: not an address to listen on ({err.strerror}).") from None
    family, kind, proto, _, address = infos[0]
    sock = socket.socket(family, kind, proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(address)
    except OSError as err:
        sock.close()
        raise ServeError(f"cannot listen on {host}:{port} ({err.strerror or err}).") from None
    sock.listen(128)
    return sock
