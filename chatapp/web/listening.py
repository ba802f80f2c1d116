"""Listening sockets that pause, instead of spinning, when the process runs out of files.

Tornado's accept handler lets ``EMFILE`` escape: the listening socket stays
readable, so the event loop calls the handler again at once, and the process
spins at full CPU writing a traceback per turn (hundreds of thousands of
lines a second) while it accepts nothing and serves its clients slowly. A
``GuardedSocket`` turns running out of descriptors (or kernel memory) into
a pause: it stops watching the socket for ``PAUSE`` seconds (waiting
connections stay in the kernel's listen backlog), logs once per episode,
and then tries again.
"""

from __future__ import annotations

import errno
import logging
import socket
from typing import Any

from tornado.ioloop import IOLoop

log = logging.getLogger(__name__)

#: Seconds a listening socket is left alone after the process ran out of descriptors.
PAUSE = 0.5
_OUT_OF_RESOURCES = {errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM}


class GuardedSocket(socket.socket):
    """A listening socket whose ``accept`` pauses the loop's watch on it when out of files."""

    _starved = False  # in an episode of running out (logged once)

    @classmethod
    def guarding(cls, sock: socket.socket) -> GuardedSocket:
        """The same listening socket (it takes over the descriptor), guarded."""
        return cls(sock.family, sock.type, sock.proto, fileno=sock.detach())

    def accept(self) -> tuple[socket.socket, Any]:
        try:
            accepted = super().accept()
        except OSError as exc:
            if exc.errno not in _OUT_OF_RESOURCES:
                raise
            self._pause(exc)
            raise BlockingIOError(errno.EAGAIN, "paused") from exc  # Tornado then returns
        if self._starved:
            self._starved = False
            log.info("accepting connections again")
        return accepted

    def _pause(self, exc: OSError) -> None:
        if not self._starved:
            self._starved = True
            log.warning(
                "cannot accept connections: %s; pausing %.1f s at a time until some close "
                "(raise the open-file limit, e.g. LimitNOFILE, or run more --workers)",
                exc.strerror,
                PAUSE,
            )
        loop = IOLoop.current()
        loop.update_handler(self, 0)
        loop.call_later(PAUSE, self._resume)

    def _resume(self) -> None:
        if self.fileno() != -1:  # not closed meanwhile (the server stopped)
            IOLoop.current().update_handler(self, IOLoop.READ)
