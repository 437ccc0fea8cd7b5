"""Connections that never finish asking: closed after a deadline.

uvicorn closes a keep-alive connection that stays idle after a response, but one that has not
sent a complete request head yet stays open for good: a client could hold hundreds of sockets
that say nothing (or a byte now and then), each a file descriptor and a slot of the server's.
:func:`head_deadline` gives uvicorn's HTTP/1.1 protocol (h11, always installed with it) a
deadline for each request head, from the moment the connection opens or the last response
ends; a connection that misses it is closed.
"""

from __future__ import annotations

import asyncio

from uvicorn.protocols.http.h11_impl import H11Protocol

__all__ = ["head_deadline"]


def head_deadline(seconds: float) -> type[H11Protocol]:
    """uvicorn's h11 protocol, closing a connection whose request head takes over ``seconds``
    (pass it as ``uvicorn.Config(http=...)``)."""

    class HeadDeadline(H11Protocol):
        _head_timer: asyncio.TimerHandle | None = None
        _cycle_seen: object = None

        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            super().connection_made(transport)
            self._start_head_timer()

        def handle_events(self) -> None:
            super().handle_events()
            if self.cycle is not None and self.cycle is not self._cycle_seen:
                self._cycle_seen = self.cycle  # a request head has arrived
                self._cancel_head_timer()

        def on_response_complete(self) -> None:
            # Started before uvicorn handles a pipelined request, which then cancels it.
            if not self.transport.is_closing():
                self._start_head_timer()
            super().on_response_complete()

        def connection_lost(self, exc: Exception | None) -> None:
            self._cancel_head_timer()
            super().connection_lost(exc)

        def _start_head_timer(self) -> None:
            self._cancel_head_timer()
            self._head_timer = self.loop.call_later(seconds, self._head_too_slow)

        def _cancel_head_timer(self) -> None:
            if self._head_timer is not None:
                self._head_timer.cancel()
                self._head_timer = None

        def _head_too_slow(self) -> None:
            self._head_timer = None
            if not self.transport.is_closing():
                self.transport.close()

    return HeadDeadline
