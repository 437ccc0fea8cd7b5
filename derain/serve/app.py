"""The HTTP API and the web page (FastAPI).

Routes: ``POST /v1/derain``, ``GET /v1/models``, ``GET /health``, the page at ``/`` and the
OpenAPI docs at ``/docs`` (their scripts served from the package, so they work offline).
Every error is ``{"error": "<one line>"}`` with its status code.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import threading
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from importlib import resources
from typing import Annotated, Any, TypeVar

from fastapi import APIRouter, Depends, FastAPI, Path, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from fastapi_offline import FastAPIOffline
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect

from .._version import __version__
from ..errors import DerainError, ImageError, describe, first_line
from .pool import ModelPool
from .uploads import (
    ACCEPTED_FORMATS,
    BodyLimit,
    Busy,
    ClientCap,
    ClientGone,
    RequestProblem,
    TooManyFromClient,
    Unauthorized,
    UnsupportedType,
    clean_name,
    probe_image,
)

__all__ = ["Limits", "create_app"]

log = logging.getLogger("derain.serve")
T = TypeVar("T")

#: Raw bodies may be sent with these content types (or none); anything else is a 415.
RAW_TYPES = ("application/octet-stream",)
MULTIPART = "multipart/form-data"
#: Progress ids: chosen by the client, used only as a key in memory.
PROGRESS_ID = r"^[A-Za-z0-9_-]{8,64}$"
#: Form fields looked at for the image, in order; otherwise the first file in the form.
FILE_FIELDS = ("image", "file")
#: The page allows only itself: no CDN, no external font, no call to another host.
PAGE_POLICY = (
    "default-src 'self'; img-src 'self' blob: data:; style-src 'self' 'unsafe-inline'; "
    "script-src 'self' 'unsafe-inline'; connect-src 'self'; frame-ancestors 'none'"
)
IMAGE_CONTENT = {
    "image/*": {"schema": {"type": "string", "format": "binary"}},
    "application/octet-stream": {"schema": {"type": "string", "format": "binary"}},
    MULTIPART: {
        "schema": {
            "type": "object",
            "properties": {"image": {"type": "string", "format": "binary"}},
            "required": ["image"],
        }
    },
}


#: Declared as HTTP bearer auth, so the OpenAPI spec has the scheme and /docs can send it.
BEARER = HTTPBearer(auto_error=False, description="The server's --token (or DERAIN_SERVE_TOKEN).")
Credentials = HTTPAuthorizationCredentials | None


@dataclass(frozen=True)
class Limits:
    """What clients may send and hold.

    Attributes:
        max_upload_bytes: largest request body.
        max_pixels: largest image, read from its header.
        upload_timeout: seconds a body may pause; also the grace before ``min_upload_rate``.
        min_upload_rate: bytes per second a body must average (0: no minimum).
        max_per_client: requests in progress per client address (0: no cap).
    """

    max_upload_bytes: int
    max_pixels: int
    upload_timeout: float = 10.0
    min_upload_rate: float = 10 * 1024
    max_per_client: int = 16


def _error(status: int, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status, headers=headers)


def _problem_response(problem: RequestProblem) -> JSONResponse:
    headers = {}
    if isinstance(problem, Unauthorized):
        headers["WWW-Authenticate"] = "Bearer"
    elif isinstance(problem, (Busy, TooManyFromClient)):
        headers["Retry-After"] = "1"
    return _error(problem.status, str(problem), headers)


def _install_error_handlers(app: FastAPI) -> None:
    async def problem(_: Request, exc: Exception) -> Response:
        assert isinstance(exc, RequestProblem)
        return _problem_response(exc)

    async def bad_image(_: Request, exc: Exception) -> Response:
        return _error(400, describe(exc))

    async def derain_error(_: Request, exc: Exception) -> Response:
        log.error("request failed: %s", describe(exc))
        return _error(500, describe(exc))

    async def http_error(_: Request, exc: Exception) -> Response:
        assert isinstance(exc, StarletteHTTPException)
        return _error(exc.status_code, str(exc.detail), dict(exc.headers or {}))

    async def invalid(_: Request, exc: Exception) -> Response:
        assert isinstance(exc, RequestValidationError)
        first = exc.errors()[0] if exc.errors() else {"loc": (), "msg": "invalid request"}
        where = ".".join(str(p) for p in first.get("loc", ()) if p not in ("query", "path", "body"))
        return _error(400, f"{where}: {first.get('msg')}" if where else str(first.get("msg")))

    async def unexpected(_: Request, exc: Exception) -> Response:
        log.exception("unexpected error")
        return _error(500, f"internal error ({type(exc).__name__}: {first_line(exc)})")

    app.add_exception_handler(RequestProblem, problem)
    app.add_exception_handler(ImageError, bad_image)
    app.add_exception_handler(DerainError, derain_error)
    app.add_exception_handler(StarletteHTTPException, http_error)
    app.add_exception_handler(RequestValidationError, invalid)
    app.add_exception_handler(Exception, unexpected)


async def _read_upload(request: Request) -> tuple[bytes, str]:
    """The image bytes of a request, multipart or raw, and a name for messages."""
    try:
        return await _read_body(request)
    except ClientDisconnect:
        raise ClientGone("upload: the client disconnected before its body was complete") from None


async def _read_body(request: Request) -> tuple[bytes, str]:
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if ctype == MULTIPART:
        async with request.form(max_files=1, max_fields=8) as form:
            fields = [form.get(f) for f in FILE_FIELDS]
            files = [v for v in (*fields, *form.values()) if isinstance(v, UploadFile)]
            if not files:
                raise RequestProblem(
                    "upload: the multipart form has no file; send it as the field 'image'"
                )
            upload = files[0]
            return await upload.read(), clean_name(upload.filename)
    if ctype and not ctype.startswith("image/") and ctype not in RAW_TYPES:
        raise UnsupportedType(
            f"upload: content type {ctype!r} is not taken; send multipart/form-data, or the "
            "image bytes as image/* or application/octet-stream"
        )
    chunks = [chunk async for chunk in request.stream()]
    return b"".join(chunks), "upload"


async def _client_left(request: Request) -> None:
    """Return once the client has disconnected; only after its body has been read.

    Past the body, the server's ``receive()`` answers nothing but the disconnect.
    """
    while (await request.receive())["type"] != "http.disconnect":
        pass


async def _unless_client_leaves(
    request: Request, work: Callable[[threading.Event], Awaitable[T]]
) -> T:
    """Await ``work(gone)``; if the client leaves first, set ``gone`` and raise ClientGone.

    Work still queued is cancelled and never starts; work running sees ``gone`` set at its
    next tile and stops there.
    """
    gone = threading.Event()
    task = asyncio.ensure_future(work(gone))
    watch = asyncio.ensure_future(_client_left(request))
    try:
        await asyncio.wait({task, watch}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        watch.cancel()
    if task.done():
        return task.result()
    gone.set()
    task.cancel()
    raise ClientGone("the client disconnected before its answer was ready")


@dataclass(frozen=True)
class _Served:
    """What the routes need, kept on ``app.state.served`` by :func:`create_app`."""

    pool: ModelPool
    limits: Limits
    token: str | None
    page: str


def _served(request: Request) -> _Served:
    served: _Served = request.app.state.served
    return served


@contextlib.asynccontextmanager
async def _lifespan(app: FastAPI) -> AsyncIterator[None]:
    try:
        yield
    finally:
        served: _Served = app.state.served
        served.pool.close()


def _authorised(request: Request, credentials: Annotated[Credentials, Depends(BEARER)]) -> None:
    """The dependency of the guarded routes, where the server has a token."""
    token = _served(request).token
    if credentials is None or not secrets.compare_digest(
        credentials.credentials.strip().encode(), str(token).encode()
    ):
        raise Unauthorized("this server needs the header 'Authorization: Bearer <token>'")


#: ``/health``, open to all; the API's routes, behind the token if there is one; the page.
service_router = APIRouter(tags=["service"])
api_router = APIRouter(tags=["derain"])
page_router = APIRouter()

DERAIN_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "The derained image in the input's format; with `layers=true`, "
        "JSON holding it and the rain layer and mask as base64 PNG.",
        "content": {"image/*": {}, "application/json": {}},
    },
    400: {"description": "Not a readable image, or a bad option."},
    401: {"description": "A token is required and was missing or wrong."},
    408: {"description": "The body stopped arriving, or came too slowly."},
    413: {"description": "Body over the upload limit, or image over the pixel limit."},
    415: {"description": "A content type or image format the server does not take."},
    429: {"description": "This client address has too many requests in progress."},
    503: {"description": "The workers and the queue are full; retry later."},
}


@service_router.get("/health", summary="Liveness and load")
async def health(request: Request) -> dict[str, Any]:
    """Answers while the workers are busy: the model never runs on the event loop."""
    served = _served(request)
    pool, workers = served.pool, served.pool.pool
    return {
        "status": "ok",
        "models": list(pool.models),
        "workers": workers.workers,
        "running": workers.running,
        "waiting": workers.waiting,
        "capacity": workers.capacity,
        "abandoned": pool.abandoned,
        "auth": served.token is not None,
    }


@api_router.get("/v1/models", summary="The loaded models")
async def models(request: Request) -> dict[str, Any]:
    served = _served(request)
    return {
        "default": served.pool.default_model,
        "models": [m.describe() for m in served.pool.models.values()],
        "formats": list(ACCEPTED_FORMATS),
        "max_upload_bytes": served.limits.max_upload_bytes,
        "max_pixels": served.limits.max_pixels,
    }


@api_router.post(
    "/v1/derain",
    summary="Derain one image",
    response_class=Response,
    openapi_extra={"requestBody": {"required": True, "content": IMAGE_CONTENT}},
    responses=DERAIN_RESPONSES,
)
async def derain(
    request: Request,
    model: Annotated[str | None, Query(description="A loaded model (GET /v1/models).")] = None,
    precision: Annotated[
        str | None, Query(description="fp32, fp16 or bf16, as the model offers.")
    ] = None,
    layers: Annotated[
        bool, Query(description="Also return the rain layer and the mask (JSON answer).")
    ] = False,
    progress: Annotated[
        str | None,
        Query(
            pattern=PROGRESS_ID,
            description="An id of your choice: GET /v1/progress/{id} then tells the tiles "
            "done while this request runs.",
        ),
    ] = None,
) -> Response:
    served = _served(request)
    pool = served.pool
    choice = pool.choose(model, precision)
    # The body is read before a slot is taken: a slow or stalled upload holds none.
    data, name = await _read_upload(request)
    probe = probe_image(data, name, served.limits.max_pixels)
    async with pool.pool.slot() as run:
        with pool.progress.track(progress) as report:
            try:
                out = await _unless_client_leaves(
                    request,
                    lambda gone: run(pool.work, choice, data, name, probe, layers, report, gone),
                )
            except ClientGone:
                pool.abandoned += 1
                log.info("%s: client gone; its work was dropped", name)
                raise
    if layers:
        payload = await run_in_threadpool(out.json_bytes)
        return Response(payload, media_type="application/json")
    headers = {"X-Derain-Seconds": f"{out.seconds:.3f}"}
    return Response(out.body, media_type=out.media_type, headers=headers)


@api_router.get("/v1/progress/{key}", summary="Tiles done by a running request")
async def tiles_done(
    request: Request, key: Annotated[str, Path(pattern=PROGRESS_ID)]
) -> dict[str, Any]:
    """``running`` is false before the request is admitted and after it ends."""
    tiles = _served(request).pool.progress.get(key)
    done, total = tiles or (0, 0)
    return {"running": tiles is not None, "done": done, "total": total}


@page_router.get("/", include_in_schema=False)
async def index(request: Request) -> HTMLResponse:
    return HTMLResponse(_served(request).page, headers={"Content-Security-Policy": PAGE_POLICY})


def create_app(
    pool: ModelPool,
    limits: Limits,
    token: str | None = None,
) -> FastAPI:
    """The ASGI app for ``pool``; requests need ``Authorization: Bearer <token>`` if set."""
    app = FastAPIOffline(
        title="derain",
        version=__version__,
        description=(
            "Remove rain from photos with DANet. POST an image to `/v1/derain` (multipart "
            "field `image`, or the raw bytes) and get the derained image back in the same "
            'format. Errors are JSON: `{"error": "<one line>"}`.'
        ),
        lifespan=_lifespan,
    )
    text = resources.files("derain.serve").joinpath("page.html").read_text(encoding="utf-8")
    app.state.served = _Served(pool, limits, token, text)
    _install_error_handlers(app)
    app.add_middleware(
        BodyLimit,
        max_bytes=limits.max_upload_bytes,
        reply=_problem_response,
        timeout=limits.upload_timeout,
        min_rate=limits.min_upload_rate,
    )
    app.add_middleware(ClientCap, per_client=limits.max_per_client, reply=_problem_response)
    guarded: list[Any] = [Depends(_authorised)] if token is not None else []
    app.include_router(service_router)
    app.include_router(api_router, dependencies=guarded)
    app.include_router(page_router)
    return app
