"""What a request may send: a bounded body, and bytes that are an image of a known format.

Both checks run before any pixel is decoded: the body is counted while it arrives (and
refused at once when its declared length is too large), and the image format and size are
read from the first bytes of the file, whatever name or type the client gave it.
"""

from __future__ import annotations

import asyncio
import io
import re
import warnings
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass
from typing import Any

from PIL import Image, UnidentifiedImageError

from ..errors import DerainError, ImageError, first_line

__all__ = [
    "ACCEPTED_FORMATS",
    "BodyLimit",
    "Busy",
    "ClientCap",
    "ClientGone",
    "Probe",
    "RequestProblem",
    "SlowUpload",
    "TooLarge",
    "TooManyFromClient",
    "Unauthorized",
    "UnsupportedType",
    "clean_name",
    "probe_image",
]

#: Formats the server reads, and writes back in the same format (a phone's multi-picture JPEG,
#: which Pillow calls MPO, comes back as a JPEG of its first picture). Nothing else is even
#: tried: Pillow's other plugins (EPS through Ghostscript, for one) never see client bytes.
ACCEPTED_FORMATS = ("PNG", "JPEG", "WEBP", "TIFF", "BMP", "GIF", "PPM")
_WRITE_AS = {"MPO": "JPEG"}
#: Longest client-supplied file name echoed in messages.
_NAME_CHARS = 80

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


class RequestProblem(DerainError):
    """A request the server refuses; ``status`` is the HTTP status it answers with."""

    status = 400


class TooLarge(RequestProblem):
    """A body over the upload limit, or an image over the pixel limit."""

    status = 413


class UnsupportedType(RequestProblem):
    """A content type the endpoint does not take, or bytes that are no accepted image."""

    status = 415


class Busy(RequestProblem):
    """Every worker is busy and the queue is full."""

    status = 503


class ClientGone(RequestProblem):
    """The client disconnected before its answer was ready; its work is dropped.

    No one reads the answer; 499 is the status access logs use for it.
    """

    status = 499


class SlowUpload(RequestProblem):
    """A body that stopped arriving, or arrives slower than the server's minimum rate."""

    status = 408


class TooManyFromClient(RequestProblem):
    """One client address has as many requests in progress as it may."""

    status = 429


class Unauthorized(RequestProblem):
    """A missing or wrong bearer token."""

    status = 401


@dataclass(frozen=True)
class Probe:
    """What the first bytes of an upload say.

    Attributes:
        format: the format the bytes are in (Pillow's name).
        width: pixels.
        height: pixels.
        frames: how many frames (an animated GIF, WebP, PNG or a multi-page TIFF: more than 1).
    """

    format: str
    width: int
    height: int
    frames: int = 1

    @property
    def write_format(self) -> str:
        """The format the answer is written in: the input's own."""
        return _WRITE_AS.get(self.format, self.format)

    @property
    def media_type(self) -> str:
        """The answer's MIME type."""
        return Image.MIME.get(self.write_format, "application/octet-stream")


def clean_name(name: str | None) -> str:
    """A client-supplied file name made safe to echo in a one-line message (never a path)."""
    if not name:
        return "upload"
    base = name.replace("\\", "/").rsplit("/", 1)[-1]
    text = "".join(c if c.isprintable() else "?" for c in base)[:_NAME_CHARS]
    return text or "upload"


def probe_image(data: bytes, name: str, max_pixels: int) -> Probe:
    """Sniff the format and size of ``data`` from its header, without decoding pixels.

    Raises:
        ImageError: empty, or a header Pillow cannot parse (HTTP 400).
        UnsupportedType: not an image in one of :data:`ACCEPTED_FORMATS` (415).
        TooLarge: more pixels than ``max_pixels`` (413).
    """
    if not data:
        raise ImageError.about(name, "empty body, no image data")
    Image.init()
    formats = [f for f in ACCEPTED_FORMATS if f in Image.OPEN]  # WebP may be left out of a build
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the bomb warning: the size is checked below
            with Image.open(io.BytesIO(data), formats=formats) as im:
                fmt, (width, height) = str(im.format), im.size
                frames = max(1, int(getattr(im, "n_frames", 1)))
    except Image.DecompressionBombError as exc:
        # Pillow refuses to even open more than twice its guard; its text gives the count.
        found = re.search(r"\((\d+) pixels\)", str(exc))
        count = f"{found[1]} pixels" if found else "too many pixels"
        raise TooLarge(
            f"{name}: image of {count}, over this server's limit of {max_pixels}"
        ) from None
    except UnidentifiedImageError:
        kinds = ", ".join(formats)
        raise UnsupportedType(
            f"{name}: not an image in a supported format ({kinds}); judged from the bytes"
        ) from None
    except Exception as exc:  # a header that starts right and then breaks
        raise ImageError.about(name, f"cannot read the image header ({first_line(exc)})") from None
    if width * height > max_pixels:
        raise TooLarge(
            f"{name}: {width}×{height} is {width * height} pixels, over this server's "
            f"limit of {max_pixels}"
        )
    if width * height * frames > max_pixels:  # every frame is derained
        raise TooLarge(
            f"{name}: {frames} frames of {width}×{height} are {width * height * frames} pixels "
            f"in all, over this server's limit of {max_pixels}"
        )
    return Probe(fmt, width, height, frames)


def _megabytes(size: int) -> str:
    """``size`` bytes in the unit of ``--max-upload-mb`` (MiB, called MB as the flag does)."""
    return f"{size / 2**20:.3g} MB"


class BodyLimit:
    """ASGI middleware: refuse request bodies over ``max_bytes``, or that come too slowly.

    A declared ``Content-Length`` over the limit is answered 413 when the app first asks
    for the body (after its token check, before one body byte is read); a body without
    one (chunked) is counted as it arrives and stopped at the limit. While the body is
    incomplete, each wait for more of it lasts at most ``timeout`` seconds, and after the
    first ``timeout`` seconds the body must have come at ``min_rate`` bytes per second on
    average (0: no minimum rate); otherwise the request is answered 408. uvicorn and
    Starlette have no such limit: they wait for a body as long as the client likes.
    """

    def __init__(
        self,
        app: ASGIApp,
        max_bytes: int,
        reply: Callable[[RequestProblem], ASGIApp],
        timeout: float,
        min_rate: float = 0.0,
    ) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.reply = reply
        self.timeout = timeout
        self.min_rate = min_rate

    def _too_large(self, size: int, more: bool = False) -> TooLarge:
        return TooLarge(
            f"upload: body of {'more than ' if more else ''}{_megabytes(size)} is over this "
            f"server's limit of {_megabytes(self.max_bytes)} (--max-upload-mb)"
        )

    def _wait_allowed(self, started: float, received: int, now: float) -> float:
        """Seconds the next piece of body may take, by the average rate (inf: no minimum)."""
        if not self.min_rate:
            return float("inf")
        return started + self.timeout + received / self.min_rate - now

    def _slow(self, received: int, elapsed: float) -> SlowUpload:
        rule = f"no pause over {self.timeout:g} s"
        if self.min_rate:
            rule += f", and {self.min_rate / 1024:g} KiB/s on average after that"
        return SlowUpload(
            f"upload: the body came too slowly ({received} bytes in {elapsed:.1f} s; "
            f"this server needs {rule})"
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers", [])).get(b"content-length")
        length: int | None = None
        if declared is not None:
            text = declared.decode("latin-1").strip()
            if not text.isdigit():
                problem: RequestProblem = RequestProblem(f"upload: bad Content-Length {text!r}")
                await self.reply(problem)(scope, receive, send)
                return
            length = int(text)
        loop = asyncio.get_running_loop()
        started = loop.time()
        received = 0
        complete = False

        async def counted() -> Message:
            nonlocal received, complete
            if complete:  # after the body, receive() only waits for the client to leave
                return await receive()
            if length is not None and length > self.max_bytes:
                raise self._too_large(length)
            by_rate = self._wait_allowed(started, received, loop.time())
            try:
                if by_rate <= 0:
                    raise TimeoutError
                message = await asyncio.wait_for(receive(), min(self.timeout, by_rate))
            except TimeoutError:
                raise self._slow(received, loop.time() - started) from None
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                complete = not message.get("more_body", False)
                if received > self.max_bytes:
                    raise self._too_large(self.max_bytes, more=True)
            return message

        await self.app(scope, counted, send)


class ClientCap:
    """ASGI middleware: at most ``per_client`` requests in progress per client address.

    One more is answered 429 at once. HTTP/1.1 carries one request at a time per connection,
    and uvicorn closes idle connections after a few seconds, so this caps the connections a
    single address can keep busy. ``per_client`` 0 means no cap.
    """

    def __init__(
        self, app: ASGIApp, per_client: int, reply: Callable[[RequestProblem], ASGIApp]
    ) -> None:
        self.app = app
        self.per_client = per_client
        self.reply = reply
        self._open: dict[str, int] = {}  # changed on the event loop only

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        client = scope.get("client")
        if scope["type"] != "http" or not self.per_client or not client:
            await self.app(scope, receive, send)
            return
        address = str(client[0])
        if self._open.get(address, 0) >= self.per_client:
            problem = TooManyFromClient(
                f"too many requests in progress from {address} (at most {self.per_client}); "
                "retry when one has finished"
            )
            await self.reply(problem)(scope, receive, send)
            return
        self._open[address] = self._open.get(address, 0) + 1
        try:
            await self.app(scope, receive, send)
        finally:
            self._open[address] -= 1
            if not self._open[address]:
                del self._open[address]
