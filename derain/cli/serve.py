"""``derain serve``: the HTTP API and the web page (needs ``pip install "derain[serve]"``)."""

from __future__ import annotations

import ipaddress
import socket
from typing import TYPE_CHECKING, Annotated

import typer

from .._defaults import DEFAULT_MODEL
from .common import (
    DebugOpt,
    DeviceOpt,
    OverlapOpt,
    PrecisionOpt,
    QuietOpt,
    TileOpt,
    UsageProblem,
    check_model_options,
    command,
    load_deraining,
)

if TYPE_CHECKING:
    from fastapi import FastAPI

HELP = (
    "Serve an HTTP API and a web page to drop images on.\n\n"
    "The page is at /, the API at /v1/derain and /v1/models, its docs at /docs, and /health "
    "answers even while the workers are busy. Binds to the loopback (127.0.0.1) unless --host "
    "says otherwise; any other address needs a bearer token (--token or the DERAIN_SERVE_TOKEN "
    "variable), which clients then send as 'Authorization: Bearer TOKEN'. Models are loaded "
    "once, at startup."
)

TOKEN_ENV = "DERAIN_SERVE_TOKEN"
#: Shortest token accepted off the loopback: 16 random characters are past guessing.
MIN_TOKEN_CHARS = 16
DEFAULT_PORT = 7000
DEFAULT_MAX_UPLOAD_MB = 50
#: 50 MP: a 12 MP phone photo with room to spare; Pillow's own guard is about 89 MP.
DEFAULT_MAX_PIXELS = 50_000_000
MEGABYTE = 2**20
KIBIBYTE = 2**10
DEFAULT_UPLOAD_TIMEOUT_S = 10.0
#: 10 KiB/s: a poor mobile link still sends a phone photo in time; a stalled client does not.
DEFAULT_MIN_UPLOAD_KIB_S = 10.0
#: A browser opens up to 6 connections to one server; a script with a few threads fits too.
DEFAULT_MAX_PER_CLIENT = 16


def is_loopback(host: str) -> bool:
    """Whether every address ``host`` names is a loopback address (``localhost``, 127/8, ::1).

    A name that cannot be resolved counts as not loopback.
    """
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        pass
    try:
        infos = socket.getaddrinfo(host, None, type=socket.SOCK_STREAM)
    except OSError:
        return False
    return bool(infos) and all(ipaddress.ip_address(i[4][0]).is_loopback for i in infos)


def check_exposure(host: str, token: str | None) -> None:
    """Refuse to serve off the loopback without a token (a usage problem, exit code 2)."""
    if token is not None and not token.strip():
        raise UsageProblem(f"--token / {TOKEN_ENV} is empty")
    if token is not None and len(token) < MIN_TOKEN_CHARS and not is_loopback(host):
        raise UsageProblem(
            f"--token / {TOKEN_ENV} has {len(token)} characters; off the loopback it needs at "
            f"least {MIN_TOKEN_CHARS}, e.g. one from: python -c 'import secrets; "
            "print(secrets.token_urlsafe())'"
        )
    if token is None and not is_loopback(host):
        raise UsageProblem(
            f"--host {host} is not a loopback address: anyone who can reach it could use "
            f"this server, so it needs a token (--token or the {TOKEN_ENV} variable); "
            "or serve on 127.0.0.1"
        )


def _bind(host: str, port: int) -> socket.socket:
    """A listening socket, bound here so that ``--port 0`` can report the port it got."""
    try:
        family, kind, proto, _, address = socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )[0]
        sock = socket.socket(family, kind, proto)
    except OSError as exc:
        raise UsageProblem(f"--host {host}: {exc.strerror or exc}") from None
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
    except OSError as exc:
        sock.close()
        raise UsageProblem(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    return sock


def _check_serve_extra() -> None:
    """Import what the serve extra brings, or raise a usage problem naming what is missing."""
    try:
        import uvicorn  # noqa: F401

        from .. import serve  # noqa: F401
    except ImportError as exc:
        raise UsageProblem(
            f"derain serve needs the serve extra ({exc.name} is missing): "
            'pip install "derain[serve]"'
        ) from None


def _address(sock: socket.socket) -> str:
    """``http://HOST:PORT/`` of a bound socket (an IPv6 host in brackets)."""
    host, port = sock.getsockname()[:2]
    shown = f"[{host}]" if ":" in host else host
    return f"http://{shown}:{port}/"


def _run(app: FastAPI, sock: socket.socket, quiet: bool, head_timeout: float) -> None:
    """Serve ``app`` with uvicorn on ``sock`` until interrupted; a connection that sends no
    complete request head within ``head_timeout`` seconds is closed."""
    import uvicorn

    from ..serve.connections import head_deadline

    config = uvicorn.Config(
        app,
        http=head_deadline(head_timeout),
        log_level="warning" if quiet else "info",
        access_log=not quiet,
        timeout_graceful_shutdown=5,
    )
    uvicorn.Server(config).run(sockets=[sock])


HostOpt = Annotated[str, typer.Option(help="Address to bind; loopback by default.")]
PortOpt = Annotated[int, typer.Option(min=0, max=65535, help="TCP port (0: any free one).")]
ModelsOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--model", "-m", help="Model to load (repeat for several; the first is the default)."
    ),
]
WorkersOpt = Annotated[int, typer.Option(min=1, help="Images computed at the same time.")]
QueueOpt = Annotated[
    int, typer.Option(min=0, help="Requests that may wait for a worker; more get 503.")
]
MaxUploadMbOpt = Annotated[
    float, typer.Option(min=0.001, help="Largest request body, in MiB (413 above).")
]
MaxImagePixelsOpt = Annotated[
    int, typer.Option(min=1, help="Largest image, in pixels, checked before decoding (413).")
]
UploadTimeoutOpt = Annotated[
    float,
    typer.Option(
        min=0.1,
        help="Seconds an upload may pause before it is answered 408; also the grace "
        "before --min-upload-kib applies, and the time a connection has to send its "
        "request head before it is closed.",
    ),
]
MinUploadKibOpt = Annotated[
    float,
    typer.Option(
        min=0, help="Slowest average upload, in KiB/s, after that grace (408 below; 0: any)."
    ),
]
MaxPerClientOpt = Annotated[
    int,
    typer.Option(
        min=0,
        help="Requests one client address may have in progress (429 above; 0: no cap). "
        "Behind a reverse proxy every client has the proxy's address: raise it or use 0.",
    ),
]
QualityOpt = Annotated[int, typer.Option(min=1, max=100, help="JPEG/WebP quality.")]
TokenOpt = Annotated[
    str | None,
    typer.Option(
        envvar=TOKEN_ENV,
        show_envvar=True,
        help="Bearer token clients must send; required off the loopback, where it "
        "needs at least 16 characters.",
    ),
]


def serve(
    host: HostOpt = "127.0.0.1",
    port: PortOpt = DEFAULT_PORT,
    model: ModelsOpt = None,
    device: DeviceOpt = "auto",
    tile: TileOpt = "auto",
    overlap: OverlapOpt = 32,
    precision: PrecisionOpt = "auto",
    workers: WorkersOpt = 1,
    queue: QueueOpt = 8,
    max_upload_mb: MaxUploadMbOpt = DEFAULT_MAX_UPLOAD_MB,
    max_pixels: MaxImagePixelsOpt = DEFAULT_MAX_PIXELS,
    upload_timeout: UploadTimeoutOpt = DEFAULT_UPLOAD_TIMEOUT_S,
    min_upload_kib: MinUploadKibOpt = DEFAULT_MIN_UPLOAD_KIB_S,
    max_per_client: MaxPerClientOpt = DEFAULT_MAX_PER_CLIENT,
    quality: QualityOpt = 95,
    token: TokenOpt = None,
    quiet: QuietOpt = False,
    debug: DebugOpt = False,
) -> None:
    """Serve the API and the page (help text: ``HELP``)."""
    # Pillow's own bomb guard follows the server's limit, for the life of the process.
    with command(quiet, debug, max_pixels) as reporter:
        check_exposure(host, token)
        # Usage errors before anything loads.
        check_model_options(tile, precision, fp32=False, device=device)
        _check_serve_extra()
        from ..serve import Limits, ModelPool, WorkerPool, create_app, load_models

        loaded = load_models(
            model or [DEFAULT_MODEL],
            lambda spec: load_deraining(spec, device, tile, overlap, False, precision),
        )
        pool = ModelPool(loaded, WorkerPool(workers, queue), quality)
        limits = Limits(
            int(max_upload_mb * MEGABYTE),
            max_pixels,
            upload_timeout=upload_timeout,
            min_upload_rate=min_upload_kib * KIBIBYTE,
            max_per_client=max_per_client,
        )
        app = create_app(pool, limits, token)
        sock = _bind(host, port)
        reporter.info(
            f"derain serve: {_address(sock)} (models: {', '.join(pool.models)}; "
            f"{loaded[0].describe()['device']}; {workers} worker(s), queue {queue}; "
            f"token {'required' if token else 'off'})"
        )
        _run(app, sock, quiet, upload_timeout)


def register(app: typer.Typer) -> None:
    """Add ``serve`` to ``app``."""
    app.command("serve", help=HELP)(serve)
