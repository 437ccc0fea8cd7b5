"""``derain serve``: the real server, started on 127.0.0.1, under bad input and load.

The server runs as a subprocess (``python -m derain serve --port 0``) with the tiny
random-weight model, its own TMPDIR, and small limits so that the limits are cheap to hit.
"""

from __future__ import annotations

import base64
import http.client
import io
import json
import os
import re
import select
import socket
import struct
import subprocess
import sys
import threading
import time
import zlib
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from browser import chromium
from clitools import png_depth_and_pixels, rgb48_png
from PIL import Image

from derain import DerainError, Deraining

pytest.importorskip("fastapi", reason="needs the serve extra: pip install '.[serve]'")
pytest.importorskip("uvicorn", reason="needs the serve extra: pip install '.[serve]'")

from derain.io.animation import Animation
from derain.io.imaging import open_frames
from derain.io.writing import read_made_by
from derain.serve import WorkerPool, probe_image
from derain.serve.uploads import Busy, TooLarge, UnsupportedType

WORKERS, QUEUE = 2, 4
MAX_UPLOAD_MB = 4
MAX_PIXELS = 2_000_000
#: Seconds an upload may pause (and the grace before the minimum rate applies).
UPLOAD_TIMEOUT_S = 4
#: Requests in progress per client address: every test client is 127.0.0.1, and the load
#: test sends 50 at once.
PER_CLIENT = 64
#: Seconds any single step may take before the test gives up (the machine may be busy).
STARTUP_S = 90
REQUEST_S = 60


@dataclass
class Server:
    process: subprocess.Popen[bytes]
    host: str
    port: int
    tmpdir: Path
    log: Path

    def request(
        self,
        method: str,
        path: str,
        body: bytes | None = None,
        headers: dict[str, str] | None = None,
    ) -> tuple[int, dict[str, str], bytes]:
        conn = http.client.HTTPConnection(self.host, self.port, timeout=REQUEST_S)
        try:
            conn.request(method, path, body=body, headers=headers or {})
            response = conn.getresponse()
            return response.status, dict(response.getheaders()), response.read()
        finally:
            conn.close()

    def rss_mb(self) -> float:
        status = Path(f"/proc/{self.process.pid}/status").read_text()
        return int(re.search(r"VmRSS:\s+(\d+) kB", status)[1]) / 1024


def start_server(tmp: Path, *args: str, env: dict[str, str] | None = None) -> Server:
    tmpdir = tmp / "server-tmp"
    tmpdir.mkdir()
    log = tmp / "server.log"
    full_env = {**os.environ, "TMPDIR": str(tmpdir), **(env or {})}
    cmd = [sys.executable, "-m", "derain", "serve", "--host", "127.0.0.1", "--port", "0", *args]
    with open(log, "wb") as out:
        process = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=full_env)
    deadline = time.monotonic() + STARTUP_S
    while time.monotonic() < deadline:
        match = re.search(r"http://127\.0\.0\.1:(\d+)/", log.read_text(errors="replace"))
        if process.poll() is not None:
            raise AssertionError(f"server exited: {log.read_text()}")
        if match:
            server = Server(process, "127.0.0.1", int(match[1]), tmpdir, log)
            try:
                if server.request("GET", "/health")[0] == 200:
                    return server
            except OSError:
                pass
        time.sleep(0.2)
    process.kill()
    raise AssertionError(f"server did not start in {STARTUP_S} s: {log.read_text()}")


def stop_server(server: Server) -> None:
    server.process.terminate()
    try:
        server.process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        server.process.kill()
        server.process.wait(timeout=20)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, model_dir: Path) -> Iterator[Server]:
    tmp = tmp_path_factory.mktemp("serve")
    srv = start_server(
        tmp,
        *("--model", str(model_dir), "--device", "cpu", "--tile", "256", "--precision", "fp32"),
        *("--workers", str(WORKERS), "--queue", str(QUEUE)),
        *("--max-upload-mb", str(MAX_UPLOAD_MB), "--max-pixels", str(MAX_PIXELS)),
        *("--upload-timeout", str(UPLOAD_TIMEOUT_S), "--max-per-client", str(PER_CLIENT)),
    )
    yield srv
    stop_server(srv)


@pytest.fixture(scope="module")
def reference(model_dir: Path) -> Deraining:
    """The library, in this process: what every answer must equal."""
    return Deraining(str(model_dir), device="cpu", tile=256, dtype="fp32")


def photo(width: int, height: int, seed: int = 0) -> Image.Image:
    """A smooth random RGB picture (compresses like a photo, not like noise)."""
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, (height // 8 + 1, width // 8 + 1, 3), dtype=np.uint8)
    return Image.fromarray(small).resize((width, height), Image.Resampling.BILINEAR)


def encoded(image: Image.Image, fmt: str, **options: object) -> bytes:
    buf = io.BytesIO()
    image.save(buf, format=fmt, **options)
    return buf.getvalue()


def multipart(data: bytes, filename: str, ctype: str, field: str = "image") -> tuple[bytes, str]:
    boundary = "derain-test-boundary-7f3a"
    head = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="{field}"; '
        f'filename="{filename}"\r\nContent-Type: {ctype}\r\n\r\n'
    ).encode()
    body = head + data + f"\r\n--{boundary}--\r\n".encode()
    return body, f"multipart/form-data; boundary={boundary}"


def png_header(width: int, height: int) -> bytes:
    """A PNG that declares ``width``×``height`` and holds almost no data."""

    def chunk(kind: bytes, payload: bytes) -> bytes:
        crc = zlib.crc32(kind + payload) & 0xFFFFFFFF
        return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", crc)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    idat = zlib.compress(b"\0" * 1024)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


def read_reply(sock: socket.socket) -> str:
    """One HTTP response from a raw socket: the head, and the body its Content-Length gives."""
    sock.settimeout(REQUEST_S)
    data = b""
    while b"\r\n\r\n" not in data:
        more = sock.recv(65536)
        if not more:
            break
        data += more
    head, _, body = data.partition(b"\r\n\r\n")
    length = re.search(rb"content-length: (\d+)", head, re.IGNORECASE)
    while length and len(body) < int(length[1]):
        more = sock.recv(65536)
        if not more:
            break
        body += more
    return (head + b"\r\n\r\n" + body).decode("utf-8", "replace")


def error_of(status: int, headers: dict[str, str], body: bytes, expected: int) -> str:
    """The one-line JSON error of a refused request."""
    assert status == expected, (status, body[:300])
    assert headers["content-type"].startswith("application/json")
    message = json.loads(body)["error"]
    assert message and "\n" not in message and "Traceback" not in message
    return message


def expected_png(reference: Deraining, image: Image.Image) -> np.ndarray:
    return np.asarray(reference.run(image), dtype=np.int16)


# --- the service --------------------------------------------------------------------------


def test_health_models_and_docs(server: Server, model_dir: Path) -> None:
    status, _, body = server.request("GET", "/health")
    health = json.loads(body)
    assert status == 200
    assert health["models"] == [model_dir.name] and health["auth"] is False
    assert health["capacity"] == WORKERS + QUEUE
    status, _, body = server.request("GET", "/v1/models")
    info = json.loads(body)
    assert status == 200 and info["default"] == model_dir.name
    # --precision fp32 made fp32 the default, first in the list.
    assert info["models"][0]["default_precision"] == info["models"][0]["precisions"][0] == "fp32"
    assert set(info["models"][0]["precisions"]) == {"fp32", "bf16"}
    assert str(model_dir) not in body.decode()  # the server's paths are not shown to clients
    # The docs page works offline: its scripts and styles come from this server.
    status, _, body = server.request("GET", "/docs")
    assert status == 200
    assets = re.findall(r'(?:src|href)="([^"]+)"', body.decode())
    assert assets and all(a.startswith("/") and not a.startswith("//") for a in assets)
    for asset in assets:
        assert server.request("GET", asset)[0] == 200, asset
    status, _, body = server.request("GET", "/openapi.json")
    assert status == 200 and "/v1/derain" in json.loads(body)["paths"]


def test_page_is_self_contained(server: Server) -> None:
    status, headers, body = server.request("GET", "/")
    page = body.decode()
    assert status == 200 and headers["content-type"].startswith("text/html")
    assert "default-src 'self'" in headers["content-security-policy"]
    assert not re.search(r"(?:src|href|url)\s*[=(]\s*[\"']?(?:https?:)?//", page)
    assert "@import" not in page
    assert all(h.startswith("data:") for h in re.findall(r'<link[^>]*href="([^"]*)"', page))


def test_raw_and_multipart_answers_equal_the_library(server: Server, reference: Deraining) -> None:
    image = photo(97, 61)
    want = expected_png(reference, image)
    raw = encoded(image, "PNG")
    status, headers, body = server.request("POST", "/v1/derain", raw, {"Content-Type": "image/png"})
    assert status == 200 and headers["content-type"] == "image/png"
    got = Image.open(io.BytesIO(body))
    assert got.format == "PNG" and got.size == image.size and got.mode == "RGB"
    assert np.abs(np.asarray(got, dtype=np.int16) - want).max() <= 1
    # Multipart, with a name and a declared type that lie: the bytes decide.
    form, ctype = multipart(raw, "holiday.jpg", "image/jpeg")
    status, headers, body = server.request("POST", "/v1/derain", form, {"Content-Type": ctype})
    assert status == 200 and headers["content-type"] == "image/png"
    assert np.abs(np.asarray(Image.open(io.BytesIO(body)), dtype=np.int16) - want).max() <= 1


@pytest.mark.parametrize(
    ("fmt", "mode", "media"),
    [("JPEG", "RGB", "image/jpeg"), ("WEBP", "RGB", "image/webp"), ("PNG", "RGBA", "image/png")],
)
def test_answer_keeps_format_size_and_mode(server: Server, fmt: str, mode: str, media: str) -> None:
    image = photo(64, 40, seed=3).convert(mode)
    status, headers, body = server.request(
        "POST", "/v1/derain", encoded(image, fmt), {"Content-Type": "application/octet-stream"}
    )
    assert status == 200 and headers["content-type"] == media
    got = Image.open(io.BytesIO(body))
    assert (got.format, got.size, got.mode) == (fmt, image.size, mode)


def _animation(fmt: str, frames: int = 3) -> bytes:
    pictures = [photo(40, 32, seed=10 + i) for i in range(frames)]
    buf = io.BytesIO()
    pictures[0].save(
        buf, format=fmt, save_all=True, append_images=pictures[1:], duration=[60] * frames, loop=0
    )
    return buf.getvalue()


@pytest.mark.parametrize("fmt", ["GIF", "WEBP", "PNG"])
def test_an_animation_comes_back_with_every_frame(server: Server, fmt: str) -> None:
    status, headers, body = server.request(
        "POST", "/v1/derain", _animation(fmt), {"Content-Type": "application/octet-stream"}
    )
    assert status == 200, body[:200]
    assert headers["content-type"] == Image.MIME[fmt]
    got = open_frames(body)
    assert isinstance(got, Animation)
    assert (got.format, got.size, len(got)) == (fmt, (40, 32), 3)
    assert got.loop == 0 and list(got.durations) == [60, 60, 60]
    made_by = read_made_by(io.BytesIO(body))
    assert made_by is not None and "frames 3" in made_by


def test_the_pixel_limit_counts_every_frame(server: Server) -> None:
    # each frame is half the limit; three of them are over it
    frames = [Image.new("RGB", (1000, 1000), (40 * i, 90, 120)) for i in range(3)]
    buf = io.BytesIO()
    frames[0].save(buf, format="GIF", save_all=True, append_images=frames[1:], duration=50)
    status, headers, body = server.request(
        "POST", "/v1/derain", buf.getvalue(), {"Content-Type": "image/gif"}
    )
    message = error_of(status, headers, body, 413)
    assert "3 frames of 1000×1000 are 3000000 pixels in all" in message
    assert str(MAX_PIXELS) in message


def test_connections_that_send_no_request_head_are_closed(server: Server) -> None:
    """Own hunt: sockets that never sent a request (or a few bytes of one) stayed open for
    good, so a client could hold hundreds of them; now each gets the upload timeout."""
    silent = [socket.create_connection((server.host, server.port), timeout=5) for _ in range(40)]
    trickle = socket.create_connection((server.host, server.port), timeout=5)
    trickle.sendall(b"GET /heal")
    open_ = [*silent, trickle]
    deadline = time.monotonic() + UPLOAD_TIMEOUT_S + 20
    closed: set[int] = set()
    while len(closed) < len(open_) and time.monotonic() < deadline:
        ready, _, _ = select.select([s for i, s in enumerate(open_) if i not in closed], [], [], 1)
        for s in ready:
            try:
                if s.recv(64) == b"":
                    closed.add(open_.index(s))
            except OSError:
                closed.add(open_.index(s))
    for s in open_:
        s.close()
    assert len(closed) == len(open_)
    # and the server still answers
    status, _, _ = server.request("GET", "/health")
    assert status == 200


def test_two_models_of_one_name_get_a_hint(model_dir: Path) -> None:
    from derain.serve.pool import load_models

    def load(spec: str) -> Deraining:
        return Deraining(str(model_dir), device="cpu")

    with pytest.raises(DerainError, match=r"both be called 'danet'; .*--name danet-onnx"):
        load_models(["models/danet.onnx", "danet"], load)


def test_16_bit_rgb_png_comes_back_in_16_bits(server: Server, reference: Deraining) -> None:
    pytest.importorskip("av", reason="16-bit RGB PNG goes through PyAV")
    y, x = np.mgrid[0:40, 0:56]
    pixels = np.stack([9_000 + 991 * x, 50_000 - 777 * y, 30_000 + 123 * (x + y)], -1)
    pixels = pixels.astype(np.uint16)
    status, headers, body = server.request(
        "POST", "/v1/derain", rgb48_png(pixels), {"Content-Type": "image/png"}
    )
    assert status == 200 and headers["content-type"] == "image/png"
    depth, got = png_depth_and_pixels(body)
    assert depth == 16
    assert np.abs(got.astype(int) - reference.run(pixels).astype(int)).max() <= 1


def test_layers_option_returns_rain_and_mask(server: Server, reference: Deraining) -> None:
    image = photo(48, 32, seed=5)
    status, headers, body = server.request(
        "POST", "/v1/derain?layers=true&precision=fp32", encoded(image, "PNG"),
        {"Content-Type": "image/png"},
    )  # fmt: skip
    assert status == 200 and headers["content-type"] == "application/json"
    answer = json.loads(body)
    want = reference.run(image, return_layers=True)
    pictures = {k: Image.open(io.BytesIO(base64.b64decode(answer[k]["base64"]))) for k in
                ("image", "rain", "mask")}  # fmt: skip
    assert all(p.size == image.size for p in pictures.values())
    for key, target in (("image", want.image), ("rain", want.rain), ("mask", want.mask)):
        diff = np.abs(np.asarray(pictures[key], np.int16) - np.asarray(target, np.int16))
        assert diff.max() <= 1, key


def test_bf16_precision(server: Server, reference: Deraining) -> None:
    image = photo(64, 48, seed=9)
    status, _, body = server.request(
        "POST", "/v1/derain?precision=bf16", encoded(image, "PNG"), {"Content-Type": "image/png"}
    )
    assert status == 200
    got = np.asarray(Image.open(io.BytesIO(body)), dtype=np.int16)
    diff = np.abs(got - expected_png(reference, image))
    assert got.shape == (48, 64, 3) and diff.mean() < 1  # measured 0.21: bf16 rounds only


def test_progress_of_a_running_request(server: Server) -> None:
    # Many tiles of 256, so that the request runs long enough to be seen running even when
    # the model is warm and the machine idle (4 tiles ran between two polls).
    data = encoded(photo(1280, 960, seed=13), "PNG")
    key = "test-progress-0001"
    answer: list[int] = []
    post = threading.Thread(
        target=lambda: answer.append(
            server.request(
                "POST", f"/v1/derain?progress={key}", data, {"Content-Type": "image/png"}
            )[0]
        )
    )
    post.start()
    seen: list[tuple[int, int]] = []
    while post.is_alive():  # ends with the request, which has its own timeout
        status, _, body = server.request("GET", f"/v1/progress/{key}")
        tiles = json.loads(body)
        assert status == 200
        if tiles["running"]:
            seen.append((tiles["done"], tiles["total"]))
        time.sleep(0.02)
    post.join()
    assert answer == [200]
    counted = [(done, total) for done, total in seen if total]
    totals = {total for _, total in counted}
    assert counted and len(totals) == 1 and min(totals) > 4, seen  # one plan, all its tiles
    dones = [done for done, _ in counted]
    assert dones == sorted(dones) and dones[-1] <= min(totals)
    # Once the request has ended its id is gone; ids are only ever keys in memory.
    status, _, body = server.request("GET", f"/v1/progress/{key}")
    assert status == 200 and json.loads(body) == {"running": False, "done": 0, "total": 0}
    assert "key" in error_of(*server.request("GET", "/v1/progress/short"), 400)


# --- bad input ----------------------------------------------------------------------------


def test_empty_body(server: Server) -> None:
    message = error_of(
        *server.request("POST", "/v1/derain", b"", {"Content-Type": "image/png"}), 400
    )
    assert "empty" in message


def test_truncated_file(server: Server) -> None:
    data = encoded(photo(200, 150), "PNG")
    form, ctype = multipart(data[: len(data) // 2], "cut.png", "image/png")
    message = error_of(*server.request("POST", "/v1/derain", form, {"Content-Type": ctype}), 400)
    assert message.startswith("cut.png:") and "truncated" in message


def test_text_file_with_an_image_name(server: Server) -> None:
    form, ctype = multipart(b"just some words, not a picture\n" * 20, "rain.jpg", "image/jpeg")
    message = error_of(*server.request("POST", "/v1/derain", form, {"Content-Type": ctype}), 415)
    assert message.startswith("rain.jpg:") and "not an image" in message


def test_huge_header_is_refused_before_decoding(server: Server) -> None:
    before = server.rss_mb()
    start = time.monotonic()
    header = png_header(50_000, 50_000)
    status, headers, body = server.request(
        "POST", "/v1/derain", header, {"Content-Type": "image/png"}
    )
    message = error_of(status, headers, body, 413)
    assert "2500000000 pixels" in message and str(MAX_PIXELS) in message
    # 2.5 gigapixels would need 7.5 GB to decode: nothing of the kind happened.
    assert time.monotonic() - start < 10
    assert server.rss_mb() - before < 50


def test_a_200_mb_body_is_refused_without_reading_it(server: Server) -> None:
    size = 200 * 2**20
    with socket.create_connection((server.host, server.port), timeout=REQUEST_S) as sock:
        sock.sendall(
            b"POST /v1/derain HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: image/png\r\n"
            + f"Content-Length: {size}\r\n\r\n".encode()
        )
        reply = read_reply(sock)  # answered before one body byte is sent
    assert reply.startswith("HTTP/1.1 413"), reply[:200]
    # In the flag's unit, naming the flag.
    assert f"body of 200 MB is over this server's limit of {MAX_UPLOAD_MB} MB" in reply
    assert "(--max-upload-mb)" in reply


def test_a_chunked_200_mb_body_is_stopped_at_the_limit(server: Server) -> None:
    """Without a Content-Length the body is counted as it comes and cut at the limit."""
    chunk = b"\0" * 2**20
    framed = f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n"
    sent = 0
    with socket.create_connection((server.host, server.port), timeout=REQUEST_S) as sock:
        sock.sendall(
            b"POST /v1/derain HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: image/png\r\n"
            b"Transfer-Encoding: chunked\r\n\r\n"
        )
        while sent < 200 * 2**20:
            readable, _, _ = select.select([sock], [], [], 0)
            if readable:
                break
            try:
                sock.sendall(framed)
            except OSError:  # the server closed the connection after answering
                break
            sent += len(chunk)
        reply = read_reply(sock)
    assert reply.startswith("HTTP/1.1 413"), reply[:200]
    assert f"body of more than {MAX_UPLOAD_MB} MB is over this server's limit" in reply
    assert sent < 100 * 2**20  # stopped long before the end


@pytest.mark.parametrize(
    "ctype", ["application/json", "text/plain", "application/x-www-form-urlencoded"]
)
def test_wrong_content_type(server: Server, ctype: str) -> None:
    data = encoded(photo(32, 32), "PNG")
    message = error_of(*server.request("POST", "/v1/derain", data, {"Content-Type": ctype}), 415)
    assert ctype in message


@pytest.mark.parametrize(
    ("query", "word"),
    [("model=nope", "unknown model"), ("precision=fp64", "precision"), ("layers=maybe", "layers")],
)
def test_bad_options(server: Server, query: str, word: str) -> None:
    data = encoded(photo(32, 32), "PNG")
    status, headers, body = server.request(
        "POST", f"/v1/derain?{query}", data, {"Content-Type": "image/png"}
    )
    assert word in error_of(status, headers, body, 400)


# --- load ---------------------------------------------------------------------------------


def test_50_concurrent_requests_health_memory_and_temp_files(
    server: Server, reference: Deraining
) -> None:
    image = photo(384, 320, seed=7)
    data = encoded(image, "PNG")
    want = expected_png(reference, image)
    gate = threading.Barrier(50)

    def one(_: int) -> tuple[int, dict[str, str], bytes, float]:
        gate.wait(timeout=REQUEST_S)
        start = time.monotonic()
        status, headers, body = server.request(
            "POST", "/v1/derain", data, {"Content-Type": "image/png"}
        )
        return status, headers, body, time.monotonic() - start

    health: list[tuple[float, int]] = []
    stop = threading.Event()

    def watch() -> None:
        while not stop.is_set():
            start = time.monotonic()
            status, _, body = server.request("GET", "/health")
            assert status == 200
            health.append((time.monotonic() - start, json.loads(body)["running"]))
            time.sleep(0.02)

    def load_round() -> list[tuple[int, dict[str, str], bytes, float]]:
        with ThreadPoolExecutor(50) as pool:
            return list(pool.map(one, range(50)))

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        answers = load_round()
    finally:
        stop.set()
        watcher.join(timeout=REQUEST_S)

    ok = [a for a in answers if a[0] == 200]
    busy = [a for a in answers if a[0] == 503]
    assert len(ok) + len(busy) == 50, sorted({a[0] for a in answers})
    assert ok and busy  # some work was done, and the rest was refused rather than queued
    for _, _, body, _ in ok:
        got = np.asarray(Image.open(io.BytesIO(body)), dtype=np.int16)
        assert got.shape == want.shape and np.abs(got - want).max() <= 1
    for status, headers, body, _ in busy:
        assert "busy" in error_of(status, headers, body, 503)
        assert headers.get("retry-after") == "1"
    # Refused at once, not after waiting for a worker: sooner than the last answer served
    # (or within 2 s, on a machine fast enough for the two to come close).
    slowest_ok = max(a[3] for a in ok)
    assert max(a[3] for a in busy) < max(slowest_ok, 2.0)
    # Health answered while the model was running, and quickly.
    assert any(running > 0 for _, running in health), health
    assert max(seconds for seconds, _ in health) < 5

    # Memory is flat: more rounds of the same load do not grow the server.
    settled = server.rss_mb()
    for _ in range(3):
        load_round()
    grown = server.rss_mb() - settled
    assert grown < 40, f"RSS grew {grown:.0f} MB over 3 more rounds of 50 requests"

    # No temp file is left, none is open: a 2 MB multipart upload spills to a temp file.
    noise = np.random.default_rng(1).integers(0, 256, (700, 1000, 3), dtype=np.uint8)
    big = encoded(Image.fromarray(noise), "PNG")
    assert len(big) > 2**20
    form, ctype = multipart(big, "noise.png", "image/png")
    assert server.request("POST", "/v1/derain", form, {"Content-Type": ctype})[0] == 200
    assert list(server.tmpdir.iterdir()) == []
    fds = Path(f"/proc/{server.process.pid}/fd")
    open_files = [os.readlink(fd) for fd in fds.iterdir() if fd.is_symlink()]
    assert not [f for f in open_files if f.startswith(str(server.tmpdir)) or "(deleted)" in f]


# --- slow and vanished clients ------------------------------------------------------------


def stalled_upload(server: Server, declared: int = 100_000) -> socket.socket:
    """A socket that announces ``declared`` body bytes, sends 4 of them and stops."""
    sock = socket.create_connection((server.host, server.port), timeout=REQUEST_S)
    sock.sendall(
        b"POST /v1/derain HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: image/png\r\n"
        + f"Content-Length: {declared}\r\n\r\n".encode()
        + b"\x89PNG"
    )
    return sock


def test_stalled_uploads_do_not_starve_real_requests(server: Server) -> None:
    """Nine clients that stop mid-body hold no queue slot, and are cut off after a while."""
    started = time.monotonic()
    stalled = [stalled_upload(server) for _ in range(9)]
    try:
        time.sleep(0.5)  # the server has taken all nine requests in
        health = json.loads(server.request("GET", "/health")[2])
        assert health["waiting"] == 0 and health["running"] == 0, health
        data = encoded(photo(64, 48, seed=17), "PNG")
        for _ in range(3):
            status, _, body = server.request(
                "POST", "/v1/derain", data, {"Content-Type": "image/png"}
            )
            assert status == 200, body[:200]
        for sock in stalled:  # each answered 408 once it has paused --upload-timeout seconds
            reply = read_reply(sock)
            assert reply.startswith("HTTP/1.1 408"), reply[:200]
            assert "too slowly (4 bytes in" in reply and f"pause over {UPLOAD_TIMEOUT_S} s" in reply
        assert time.monotonic() - started < UPLOAD_TIMEOUT_S + REQUEST_S / 4
    finally:
        for sock in stalled:
            sock.close()


def test_a_trickling_upload_is_cut_at_the_minimum_rate(server: Server) -> None:
    """A byte every 0.25 s never pauses long, but is far under the 10 KiB/s minimum."""
    started = time.monotonic()
    with stalled_upload(server) as sock:
        sock.setblocking(False)
        for _ in range(int(4 * (UPLOAD_TIMEOUT_S + REQUEST_S / 4))):  # bounded: 4 bytes a second
            if select.select([sock], [], [], 0.25)[0]:
                break
            sock.send(b"\0")
        sock.setblocking(True)
        reply = read_reply(sock)
    elapsed = time.monotonic() - started
    assert reply.startswith("HTTP/1.1 408"), reply[:200]
    assert "too slowly" in reply and "10 KiB/s on average" in reply
    assert UPLOAD_TIMEOUT_S - 0.5 < elapsed < UPLOAD_TIMEOUT_S + REQUEST_S / 4


def test_one_client_address_may_hold_only_so_many_requests(server: Server) -> None:
    stalled = [stalled_upload(server) for _ in range(PER_CLIENT)]
    try:
        deadline = time.monotonic() + REQUEST_S
        while time.monotonic() < deadline:  # until the server has taken every one in
            status, headers, body = server.request("GET", "/health")
            if status == 429:
                break
            time.sleep(0.1)
        message = error_of(status, headers, body, 429)
        assert f"at most {PER_CLIENT}" in message and headers["retry-after"] == "1"
    finally:
        for sock in stalled:
            sock.close()
    # Once they have gone, the address may ask again.
    deadline = time.monotonic() + REQUEST_S
    while server.request("GET", "/health")[0] != 200:
        assert time.monotonic() < deadline
        time.sleep(0.1)


def test_work_stops_when_its_client_has_gone(server: Server) -> None:
    """Six uploads of a large photo whose clients leave once admitted: the queued ones are
    dropped, the running ones stop at their next tile, and the pool is free at once."""
    # Noise, not a smooth photo: the random network then runs ~1 s a tile here (24 tiles).
    noise = np.random.default_rng(19).integers(0, 256, (854, 1280, 3), dtype=np.uint8)
    data = encoded(Image.fromarray(noise), "PNG")
    before = json.loads(server.request("GET", "/health")[2]).get("abandoned", 0)
    head = (
        "POST /v1/derain HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: image/png\r\n"
        f"Content-Length: {len(data)}\r\n\r\n"
    ).encode()
    clients = []
    for _ in range(WORKERS + QUEUE):
        clients.append(socket.create_connection((server.host, server.port), timeout=REQUEST_S))
        clients[-1].sendall(head + data)
    try:
        deadline = time.monotonic() + REQUEST_S / 3
        while time.monotonic() < deadline:  # until all six are running or queued
            health = json.loads(server.request("GET", "/health")[2])
            if (health["running"], health["waiting"]) == (WORKERS, QUEUE):
                break
            time.sleep(0.1)
        assert (health["running"], health["waiting"]) == (WORKERS, QUEUE), health
    finally:
        for sock in clients:
            sock.close()
    deadline = time.monotonic() + 8  # a tile takes ~1 s; the six photos' work, ~16 s here
    while time.monotonic() < deadline:
        health = json.loads(server.request("GET", "/health")[2])
        if health["running"] == health["waiting"] == 0:
            break
        time.sleep(0.1)
    assert health["running"] == health["waiting"] == 0, health
    assert health["abandoned"] - before == WORKERS + QUEUE
    # The freed workers serve the next client at once.
    small = encoded(photo(64, 48, seed=23), "PNG")
    assert server.request("POST", "/v1/derain", small, {"Content-Type": "image/png"})[0] == 200
    assert "Traceback" not in server.log.read_text(errors="replace"), server.log.read_text()[-6000:]


# --- access -------------------------------------------------------------------------------


def test_token_is_required_when_set(tmp_path: Path, model_dir: Path) -> None:
    srv = start_server(
        tmp_path, "--model", str(model_dir), "--device", "cpu",
        env={"DERAIN_SERVE_TOKEN": "s3cret-token"},
    )  # fmt: skip
    try:
        status, _, body = srv.request("GET", "/health")
        assert status == 200 and json.loads(body)["auth"] is True
        status, headers, body = srv.request("GET", "/v1/models")
        assert "Bearer" in error_of(status, headers, body, 401)
        assert headers["www-authenticate"] == "Bearer"
        wrong = {"Authorization": "Bearer guess"}
        assert srv.request("GET", "/v1/models", headers=wrong)[0] == 401
        data = encoded(photo(32, 32), "PNG")
        assert srv.request("POST", "/v1/derain", data, {"Content-Type": "image/png"})[0] == 401
        # The token is checked before the size: a huge body without one is 401, not 413.
        with socket.create_connection((srv.host, srv.port), timeout=REQUEST_S) as sock:
            sock.sendall(
                b"POST /v1/derain HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: image/png\r\n"
                + f"Content-Length: {200 * 2**20}\r\n\r\n".encode()
            )
            assert read_reply(sock).startswith("HTTP/1.1 401")
        # The OpenAPI spec declares the bearer scheme, so /docs can send the token.
        spec = json.loads(srv.request("GET", "/openapi.json")[2])
        schemes = spec["components"]["securitySchemes"]
        assert [(s["type"], s["scheme"]) for s in schemes.values()] == [("http", "bearer")]
        assert spec["paths"]["/v1/derain"]["post"]["security"]
        right = {"Authorization": "Bearer s3cret-token"}
        assert srv.request("GET", "/v1/models", headers=right)[0] == 200
        assert (
            srv.request("POST", "/v1/derain", data, {**right, "Content-Type": "image/png"})[0]
            == 200
        )
    finally:
        stop_server(srv)


@pytest.mark.slow  # the export: about 3 minutes on a busy 2-core machine
def test_an_onnx_model_is_served_in_fp32(
    tmp_path: Path, model_dir: Path, reference: Deraining
) -> None:
    pytest.importorskip("onnxruntime", reason="needs the onnx extra")
    from derain.engines.onnx import export_onnx

    onnx_file = export_onnx(str(model_dir), tmp_path / "tiny.onnx")
    srv = start_server(tmp_path, "--model", str(onnx_file), "--device", "cpu", "--tile", "256")
    try:
        status, _, body = srv.request("GET", "/v1/models")
        (info,) = json.loads(body)["models"]
        assert (info["name"], info["runtime"], info["precisions"]) == (
            "tiny",
            "onnxruntime",
            ["fp32"],
        )
        image = photo(80, 56, seed=21)
        status, _, body = srv.request(
            "POST", "/v1/derain", encoded(image, "PNG"), {"Content-Type": "image/png"}
        )
        assert status == 200
        got = np.asarray(Image.open(io.BytesIO(body)), dtype=np.int16)
        assert np.abs(got - expected_png(reference, image)).max() <= 2
        status, headers, body = srv.request(
            "POST",
            "/v1/derain?precision=bf16",
            encoded(image, "PNG"),
            {"Content-Type": "image/png"},
        )
        assert "use fp32" in error_of(status, headers, body, 400)
    finally:
        stop_server(srv)


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "192.0.2.1"])
def test_refuses_to_serve_off_loopback_without_a_token(
    host: str, model_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from typer.testing import CliRunner

    from derain.cli import app

    monkeypatch.delenv("DERAIN_SERVE_TOKEN", raising=False)
    result = CliRunner().invoke(app, ["serve", "--host", host, "--model", str(model_dir)])
    assert result.exit_code == 2
    line = result.output.strip()
    assert "\n" not in line and "not a loopback address" in line and "--token" in line


def test_refuses_a_short_token_off_loopback(
    model_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from typer.testing import CliRunner

    from derain.cli import app

    monkeypatch.delenv("DERAIN_SERVE_TOKEN", raising=False)
    args = ["serve", "--host", "0.0.0.0", "--model", str(model_dir), "--token", "a"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 2
    assert "has 1 characters" in result.output and "at least 16" in result.output


def test_loopback_names() -> None:
    from derain.cli.serve import is_loopback

    assert all(map(is_loopback, ["127.0.0.1", "127.8.9.10", "::1", "localhost"]))
    assert not any(map(is_loopback, ["0.0.0.0", "::", "192.0.2.1", "no-such-host.invalid"]))


def test_help_does_not_import_the_serve_extra() -> None:
    code = (
        "import sys\nfrom derain.cli import main\n"
        "try:\n    main(['serve', '--help'])\nexcept SystemExit:\n    pass\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in "
        "('fastapi', 'uvicorn', 'starlette', 'fastapi_offline', 'derain.serve')))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0 and "--workers" in result.stdout
    assert result.stdout.strip().splitlines()[-1] == "[]"


def test_missing_extra_is_one_line(monkeypatch: pytest.MonkeyPatch, model_dir: Path) -> None:
    from typer.testing import CliRunner

    from derain.cli import app

    monkeypatch.setitem(sys.modules, "uvicorn", None)  # as if the extra were not installed
    result = CliRunner().invoke(app, ["serve", "--model", str(model_dir)])
    assert result.exit_code == 2
    assert 'pip install "derain[serve]"' in result.output


# --- pieces -------------------------------------------------------------------------------


def test_probe_reads_only_the_header() -> None:
    assert probe_image(encoded(photo(30, 20), "JPEG"), "a", 10_000).format == "JPEG"
    with pytest.raises(TooLarge, match="10000×5000 is 50000000 pixels"):
        probe_image(png_header(10_000, 5_000), "big.png", 10**7)
    with pytest.raises(TooLarge, match="2000000000 pixels"):  # past Pillow's own guard
        probe_image(png_header(50_000, 40_000), "bigger.png", 10**7)
    with pytest.raises(TooLarge, match="over this server's limit of 100"):
        probe_image(png_header(20, 10), "b.png", 100)
    with pytest.raises(UnsupportedType, match="judged from the bytes"):
        probe_image(b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 10 10\n", "c.png", 100)


def test_pool_admits_workers_plus_queue_then_refuses() -> None:
    import asyncio

    async def scenario() -> None:
        pool = WorkerPool(workers=1, queue=1)
        release = threading.Event()
        async with pool.slot() as run_a:
            first = asyncio.ensure_future(run_a(release.wait, 30))
            async with pool.slot():
                with pytest.raises(Busy):
                    async with pool.slot():
                        pass
            # A finished request whose work never started gives its slot back at once...
            async with pool.slot():
                pass
            await asyncio.sleep(0.05)
            assert pool.running == 1
            first.cancel()  # ...a client gone away does not: its work still holds the worker
        with pytest.raises(Busy):
            async with pool.slot(), pool.slot():
                pass
        release.set()
        for _ in range(200):
            await asyncio.sleep(0.01)
            if pool.running == 0 and pool.waiting == 0:
                break
        async with pool.slot(), pool.slot():
            pass
        pool.close()

    asyncio.run(scenario())


# --- the page, in a real browser ----------------------------------------------------------

DROP_JS = """
const [b64, name, type] = arguments;
const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
const data = new DataTransfer();
data.items.add(new File([bytes], name, { type }));
const target = document.getElementById("drop");
for (const kind of ["dragenter", "dragover", "drop"]) {
  const init = { bubbles: true, cancelable: true, dataTransfer: data };
  target.dispatchEvent(new DragEvent(kind, init));
}
"""


def wait_for(condition: Callable[[], Any], what: str, seconds: float = REQUEST_S) -> Any:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out after {seconds} s waiting for {what}")


def complete_image(path: Path) -> tuple[tuple[int, int], str] | None:
    """Size and format of a downloaded image, once the browser has finished writing it."""
    try:
        with Image.open(path) as im:
            im.load()
            return im.size, str(im.format)
    except (OSError, SyntaxError):  # not there yet, or still being written
        return None


def natural_width(driver: Any, element: Any) -> int:
    return int(driver.execute_script("return arguments[0].naturalWidth", element))


#: Images on screen that did not load: a broken-image icon (with its alt text) to the user.
BROKEN_IMAGES_JS = """
return Array.from(document.images)
  .filter((i) => i.getClientRects().length > 0 && (!i.complete || i.naturalWidth === 0))
  .map((i) => i.id || i.alt || i.src);
"""


def assert_nothing_broken(driver: Any) -> None:
    assert driver.execute_script(BROKEN_IMAGES_JS) == []


def assert_viewer_idle(driver: Any) -> None:
    """Before any result: no compare area, no live-looking slider, toggle or download."""
    from selenium.webdriver.common.by import By

    find = driver.find_element
    assert not find(By.ID, "compare").is_displayed()
    assert find(By.ID, "empty").is_displayed()
    assert not find(By.ID, "split").is_enabled() and not find(By.ID, "toggle").is_enabled()
    assert find(By.ID, "download").get_attribute("aria-disabled") == "true"
    assert_nothing_broken(driver)


@pytest.mark.slow
def test_page_in_headless_chromium(server: Server, tmp_path: Path) -> None:
    from selenium.webdriver.common.by import By

    downloads = tmp_path / "downloads"
    downloads.mkdir()
    dropped = photo(150, 100, seed=11)
    picked = photo(120, 90, seed=12)
    picked_path = tmp_path / "street.jpg"
    picked.save(picked_path, quality=90)
    origin = f"http://{server.host}:{server.port}"
    driver = chromium(downloads)
    try:
        driver.get(origin + "/")
        find = driver.find_element
        wait_for(lambda: find(By.ID, "model").get_attribute("value"), "the model list")
        driver.save_screenshot(str(tmp_path / "empty.png"))
        assert_viewer_idle(driver)
        assert not find(By.ID, "token-box").is_displayed()
        # Drop one image, pick another: a batch of two, run one after the other.
        payload = base64.b64encode(encoded(dropped, "PNG")).decode()
        driver.execute_script(DROP_JS, payload, "rainy.png", "image/png")
        find(By.ID, "pick").send_keys(str(picked_path))
        rows = lambda: driver.find_elements(By.CSS_SELECTOR, "#jobs li")  # noqa: E731
        wait_for(lambda: len(rows()) == 2, "two rows")
        states = lambda: [r.get_attribute("data-state") for r in rows()]  # noqa: E731
        wait_for(lambda: states() == ["done", "done"], f"both results (now {states()})")
        assert find(By.ID, "message").text == ""
        for row, source, name in (
            (0, dropped, "rainy_derained.png"),
            (1, picked, "street_derained.jpg"),
        ):
            rows()[row].click()
            after = find(By.ID, "after")
            width = source.width
            wait_for(lambda a=after, w=width: natural_width(driver, a) == w, "the result")
            assert find(By.ID, "compare").is_displayed() and not find(By.ID, "empty").is_displayed()
            assert find(By.ID, "split").is_enabled() and find(By.ID, "toggle").is_enabled()
            assert_nothing_broken(driver)
            driver.save_screenshot(str(tmp_path / f"loaded-{row}.png"))
            find(By.ID, "split").send_keys("\ue012" * 5)  # arrow left: the slider moves
            assert "inset" in after.get_attribute("style")
            find(By.ID, "download").click()
            target = downloads / name
            got = wait_for(lambda t=target: complete_image(t), f"the download {name}")
            assert got == (source.size, "PNG" if name.endswith(".png") else "JPEG")
        # Nothing was loaded from anywhere but this server.
        urls = driver.execute_script(
            "return performance.getEntriesByType('resource').map((e) => e.name)"
        )
        assert all(u.startswith((origin, "blob:", "data:")) for u in urls), urls
        logs = driver.get_log("browser")
        assert not [e for e in logs if e["level"] == "SEVERE"], logs
    finally:
        driver.quit()


def test_page_shows_an_animation_as_an_animation(server: Server, tmp_path: Path) -> None:
    from selenium.webdriver.common.by import By

    frames = [Image.new("RGB", (60, 40), colour) for colour in ((230, 40, 40), (40, 40, 230))]
    buf = io.BytesIO()
    frames[0].save(buf, format="GIF", save_all=True, append_images=frames[1:], duration=400, loop=0)
    driver = chromium(tmp_path)
    try:
        driver.get(f"http://{server.host}:{server.port}/")
        find = driver.find_element
        wait_for(lambda: find(By.ID, "model").get_attribute("value"), "the model list")
        payload = base64.b64encode(buf.getvalue()).decode()
        driver.execute_script(DROP_JS, payload, "blink.gif", "image/gif")
        row = lambda: driver.find_elements(By.CSS_SELECTOR, "#jobs li")  # noqa: E731
        wait_for(lambda: [r.get_attribute("data-state") for r in row()] == ["done"], "the result")
        row()[0].click()
        after = find(By.ID, "after")
        wait_for(lambda: natural_width(driver, after) == 60, "the result shown")
        # the shown picture changes while nothing else happens: the browser plays the frames
        seen = set()
        for _ in range(6):
            shot = Image.open(io.BytesIO(after.screenshot_as_png)).convert("RGB")
            red, _, blue = np.asarray(shot, dtype=float).reshape(-1, 3).mean(axis=0)
            seen.add("red" if red > blue else "blue")
            time.sleep(0.25)
        assert seen == {"red", "blue"}
    finally:
        driver.quit()


@pytest.mark.slow
def test_page_asks_for_the_token(tmp_path: Path, model_dir: Path) -> None:
    """In token mode the page asks for the token, not with the API's raw message."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    secret = "page-token-0123456789"
    srv = start_server(
        tmp_path, "--model", str(model_dir), "--device", "cpu",
        env={"DERAIN_SERVE_TOKEN": secret},
    )  # fmt: skip
    driver = chromium(tmp_path)
    try:
        driver.get(f"http://{srv.host}:{srv.port}/")
        find = driver.find_element
        wait_for(lambda: find(By.ID, "message").text, "the token prompt")
        driver.save_screenshot(str(tmp_path / "token-prompt.png"))
        message = find(By.ID, "message").text
        assert "needs a token" in message and "Authorization" not in message
        token = find(By.ID, "token")
        assert token.is_displayed() and driver.switch_to.active_element == token
        assert_viewer_idle(driver)
        token.send_keys("wrong-token" + Keys.ENTER)
        wait_for(lambda: "not the server's" in find(By.ID, "message").text, "the wrong-token line")
        token.clear()
        token.send_keys(secret + Keys.ENTER)
        wait_for(lambda: find(By.ID, "model").get_attribute("value"), "the model list")
        assert find(By.ID, "message").text == ""
    finally:
        driver.quit()
        stop_server(srv)
