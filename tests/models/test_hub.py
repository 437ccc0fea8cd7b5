"""The ``hf-hub:`` path against a Hub look-alike on loopback: real downloads, no outside traffic.

The fake Hub answers what ``hf_hub_download`` asks for (huggingface_hub 2.x, read from its
``file_download.py``): ``HEAD`` then ``GET /{repo}/resolve/{revision}/{file}``. Every answer
carries ``X-Repo-Commit``; a plain git file answers 200 with its git blob sha1 as ``ETag``; an
LFS file answers 302 to a "CDN" (a second server: another origin, so the client stops at the
redirect as it does for the real CDN) with ``X-Linked-Etag`` (its sha256) and
``X-Linked-Size``. Errors carry ``X-Error-Code``: unknown repo 401 ``RepoNotFound``, unknown
revision 404 ``RevisionNotFound``, unknown file 404 ``EntryNotFound``.
"""

from __future__ import annotations

import hashlib
import re
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote

import pytest
import torch
from huggingface_hub import constants

from derain import Deraining
from derain.errors import ModelNotFoundError, WeightsError, WeightsNotAvailableError
from derain.models.danet import DANet, DANetConfig
from derain.weights import WEIGHTS_NAME, save_pretrained

REPO = "derain-test/tiny-danet"
MAIN_SHA = hashlib.sha1(b"main").hexdigest()
V1_SHA = hashlib.sha1(b"v1").hexdigest()
TINY = DANetConfig(channels=8, orb_blocks=1, stage_blocks=1)


def _git_blob_sha1(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


class FakeHub:
    """Repos live in ``root/{owner}/{repo}/{commit}/{file}``; refs in ``.../refs/{name}``."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.requests: list[str] = []
        self.blobs: dict[str, bytes] = {}
        self.hub = self._start()
        self.cdn = self._start()
        self.url = f"http://127.0.0.1:{self.hub.server_port}"
        self.cdn_url = f"http://127.0.0.1:{self.cdn.server_port}"

    def _start(self) -> ThreadingHTTPServer:
        server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        server.fake_hub = self  # type: ignore[attr-defined]
        threading.Thread(target=server.serve_forever, args=(0.02,), daemon=True).start()
        return server

    def stop(self) -> None:
        for server in (self.hub, self.cdn):
            server.shutdown()
            server.server_close()

    def publish(self, repo_id: str, commit: str, model: DANet, refs: tuple[str, ...]) -> Path:
        """Save ``model`` as commit ``commit`` of ``repo_id`` and point ``refs`` at it."""
        folder = self.root / repo_id / commit
        save_pretrained(model, folder)
        for ref in refs:
            (self.root / repo_id / "refs").mkdir(parents=True, exist_ok=True)
            (self.root / repo_id / "refs" / ref).write_text(commit)
        return folder

    def answer(self, server: ThreadingHTTPServer, path: str) -> tuple[int, dict[str, str], bytes]:
        if server is self.cdn:
            blob = self.blobs.get(path.removeprefix("/lfs/"))
            return (200, {}, blob) if blob is not None else (404, {}, b"")
        match = re.fullmatch(r"/([^/]+/[^/]+)/resolve/([^/]+)/(.+)", path)
        if match is None:
            return 404, {}, b""
        repo_id, revision, filename = (unquote(g) for g in match.groups())
        repo = self.root / repo_id
        if not repo.is_dir():
            return 401, {"X-Error-Code": "RepoNotFound", "X-Error-Message": "not found"}, b""
        ref = repo / "refs" / revision
        commit = ref.read_text() if ref.is_file() else revision
        if not re.fullmatch(r"[0-9a-f]{40}", commit) or not (repo / commit).is_dir():
            return 404, {"X-Error-Code": "RevisionNotFound"}, b""
        headers = {"X-Repo-Commit": commit}
        file = repo / commit / filename
        if not file.is_file():
            return 404, {**headers, "X-Error-Code": "EntryNotFound"}, b""
        data = file.read_bytes()
        if not filename.endswith(".safetensors"):
            return 200, {**headers, "ETag": f'"{_git_blob_sha1(data)}"'}, data
        sha256 = hashlib.sha256(data).hexdigest()
        self.blobs[sha256] = data
        headers |= {
            "Location": f"{self.cdn_url}/lfs/{sha256}",
            "ETag": f'"{_git_blob_sha1(b"lfs pointer " + sha256.encode())}"',
            "X-Linked-Etag": f'"{sha256}"',
            "X-Linked-Size": str(len(data)),
        }
        return 302, headers, b""


class _Handler(BaseHTTPRequestHandler):
    def _reply(self, body: bool) -> None:
        hub: FakeHub = self.server.fake_hub  # type: ignore[attr-defined]
        hub.requests.append(f"{self.command} {self.path}")
        status, headers, data = hub.answer(self.server, self.path)  # type: ignore[arg-type]
        self.send_response(status)
        for key, value in {**headers, "Content-Length": str(len(data))}.items():
            self.send_header(key, value)
        self.end_headers()
        if body:
            self.wfile.write(data)

    def do_HEAD(self) -> None:
        self._reply(body=False)

    def do_GET(self) -> None:
        self._reply(body=True)

    def log_message(self, *args: object) -> None:
        pass


def _tiny(seed: int) -> DANet:
    torch.manual_seed(seed)
    return DANet(TINY)


@pytest.fixture
def hub(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeHub]:
    fake = FakeHub(tmp_path / "served")
    cache = tmp_path / "hf" / "hub"
    # The environment is what a user sets, and a freshly started process would honour it...
    monkeypatch.setenv("HF_ENDPOINT", fake.url)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("HF_TOKEN", raising=False)
    # ...but huggingface_hub.constants reads it once, at import (already done: this module
    # imports it), and hf_hub_download reads these module attributes at call time. So setting
    # the environment alone would still send requests to huggingface.co and write to the real
    # cache: patch the attributes it actually uses. The URL template is derived from ENDPOINT
    # at import too. No token is sent, even if the machine running the tests has one.
    monkeypatch.setattr(constants, "ENDPOINT", fake.url)
    template = fake.url + "/{repo_id}/resolve/{revision}/{filename}"
    monkeypatch.setattr(constants, "HUGGINGFACE_CO_URL_TEMPLATE", template)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(cache))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(constants, "HF_HUB_DISABLE_IMPLICIT_TOKEN", True)
    fake.publish(REPO, MAIN_SHA, _tiny(0), refs=("main",))
    fake.publish(REPO, V1_SHA, _tiny(1), refs=("v1",))
    yield fake
    fake.stop()


def _weights(model: DANet) -> dict[str, torch.Tensor]:
    return {k: v.detach().contiguous() for k, v in model.named_parameters()}


def _served(hub: FakeHub, commit: str) -> dict[str, torch.Tensor]:
    return _weights(Deraining(hub.root / REPO / commit, device="cpu").model)


def _same(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def _one_line(exc: pytest.ExceptionInfo[BaseException], *needles: str) -> str:
    message = str(exc.value)
    assert "\n" not in message
    for needle in needles:
        assert needle in message
    return message


def test_served_revisions_differ(hub: FakeHub) -> None:
    assert not _same(_served(hub, MAIN_SHA), _served(hub, V1_SHA))


def test_download_loads_main(hub: FakeHub) -> None:
    derain = Deraining(f"hf-hub:{REPO}", device="cpu")
    assert _same(_weights(derain.model), _served(hub, MAIN_SHA))
    assert derain.source == f"hf-hub:{REPO}"
    # The weights came over HTTP: HEAD+GET for config.json, HEAD on the Hub then GET on the CDN.
    assert f"GET /{REPO}/resolve/main/config.json" in hub.requests
    assert any(r.startswith("GET /lfs/") for r in hub.requests)


@pytest.mark.parametrize("revision", ["v1", V1_SHA])
def test_pinned_revision_loads_its_own_weights(hub: FakeHub, revision: str) -> None:
    derain = Deraining(f"hf-hub:{REPO}@{revision}", device="cpu")
    assert _same(_weights(derain.model), _served(hub, V1_SHA))


@pytest.mark.parametrize("revision", ["", "@v1", f"@{V1_SHA}"])
def test_offline_reload_uses_cache_without_requests(
    hub: FakeHub, monkeypatch: pytest.MonkeyPatch, revision: str
) -> None:
    first = _weights(Deraining(f"hf-hub:{REPO}{revision}", device="cpu").model)
    hub.requests.clear()
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    again = _weights(Deraining(f"hf-hub:{REPO}{revision}", device="cpu").model)
    assert _same(first, again)
    assert hub.requests == []


def test_unreachable_hub_falls_back_to_cache(hub: FakeHub) -> None:
    first = _weights(Deraining(f"hf-hub:{REPO}", device="cpu").model)
    hub.stop()  # connection refused from now on, and HF_HUB_OFFLINE is not set
    assert _same(first, _weights(Deraining(f"hf-hub:{REPO}", device="cpu").model))


def test_offline_with_empty_cache_is_refused(hub: FakeHub, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(WeightsNotAvailableError) as exc:
        Deraining(f"hf-hub:{REPO}", device="cpu")
    _one_line(exc, f"hf-hub:{REPO}", "offline")
    assert hub.requests == []


def test_unknown_repository_is_refused(hub: FakeHub) -> None:
    with pytest.raises(WeightsNotAvailableError) as exc:
        Deraining("hf-hub:nobody/nothing", device="cpu")
    _one_line(exc, "hf-hub:nobody/nothing", "no such repository")


def test_unknown_revision_is_refused(hub: FakeHub) -> None:
    with pytest.raises(WeightsNotAvailableError) as exc:
        Deraining(f"hf-hub:{REPO}@v9", device="cpu")
    _one_line(exc, f"hf-hub:{REPO}@v9", "'v9'")


def test_repository_without_weights_is_refused(hub: FakeHub) -> None:
    folder = hub.publish("derain-test/no-weights", MAIN_SHA, _tiny(2), refs=("main",))
    (folder / WEIGHTS_NAME).unlink()
    with pytest.raises(WeightsNotAvailableError) as exc:
        Deraining("hf-hub:derain-test/no-weights", device="cpu")
    _one_line(exc, "hf-hub:derain-test/no-weights", WEIGHTS_NAME)


def test_served_bytes_not_matching_recorded_sha256_are_refused(hub: FakeHub) -> None:
    folder = hub.publish("derain-test/tampered", MAIN_SHA, _tiny(3), refs=("main",))
    data = bytearray((folder / WEIGHTS_NAME).read_bytes())
    data[-3] ^= 0x01  # inside the tensor data; the Hub serves the altered file consistently
    (folder / WEIGHTS_NAME).write_bytes(data)
    with pytest.raises(WeightsError) as exc:
        Deraining("hf-hub:derain-test/tampered", device="cpu")
    assert exc.type is WeightsError
    _one_line(exc, "sha256", WEIGHTS_NAME)


def test_cdn_down_after_metadata_is_refused(hub: FakeHub, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("huggingface_hub.file_download.time.sleep", lambda _: None)  # retries
    hub.cdn.shutdown()
    hub.cdn.server_close()
    with pytest.raises(WeightsNotAvailableError) as exc:
        Deraining(f"hf-hub:{REPO}", device="cpu")
    _one_line(exc, f"hf-hub:{REPO}", "download failed")


@pytest.mark.parametrize("spec", ["hf-hub:just-a-name", "hf-hub:bad name/repo"])
def test_malformed_hub_id_is_refused_without_traffic(hub: FakeHub, spec: str) -> None:
    with pytest.raises(ModelNotFoundError) as exc:
        Deraining(spec, device="cpu")
    _one_line(exc, spec)
    assert hub.requests == []


def test_unreachable_hub_with_empty_cache_fails_fast_and_quietly(
    hub: FakeHub, capfd: pytest.CaptureFixture[str]
) -> None:
    import time

    hub.stop()  # connection refused, nothing cached, HF_HUB_OFFLINE not set
    start = time.monotonic()
    with pytest.raises(WeightsNotAvailableError) as exc:
        Deraining(f"hf-hub:{REPO}", device="cpu")
    elapsed = time.monotonic() - start
    _one_line(exc, f"hf-hub:{REPO}", "cannot be reached", "HF_HUB_OFFLINE=1")
    captured = capfd.readouterr()
    assert captured.err == "" and captured.out == ""  # no retry chatter from huggingface_hub
    assert elapsed < 5, f"took {elapsed:.1f} s"
