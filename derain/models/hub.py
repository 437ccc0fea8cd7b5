"""Weights from the Hugging Face Hub: ``hf-hub:owner/repo[@revision]``, downloaded once,
checked like any file, and read from the cache when offline."""

from __future__ import annotations

import contextlib
import importlib
import logging
import socket
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import ModelNotFoundError, WeightsNotAvailableError, first_line
from .weight_files import CONFIG_NAME, WEIGHTS_NAME, check_sha256, load_file, read_config

if TYPE_CHECKING:
    from .danet import DANet

__all__ = ["HUB_PROBE_TIMEOUT_S", "load_from_hub"]

#: Seconds to wait for a TCP connection to the Hub (or the proxy) before treating it as
#: unreachable and using the local cache only.
HUB_PROBE_TIMEOUT_S = 3.0


def _hub_reachable(endpoint: str) -> bool:
    """Whether a TCP connection to the Hub's host (or to the proxy for it) opens quickly."""
    url = urllib.parse.urlsplit(endpoint)
    proxy = urllib.request.getproxies().get(url.scheme)
    if proxy and not urllib.request.proxy_bypass(url.hostname or ""):
        url = urllib.parse.urlsplit(proxy if "//" in proxy else f"//{proxy}")
    default_port = 443 if url.scheme == "https" else 80
    try:
        with socket.create_connection(
            (url.hostname or "", url.port or default_port), timeout=HUB_PROBE_TIMEOUT_S
        ):
            return True
    except OSError:
        return False


@contextlib.contextmanager
def _quiet_hub_logs() -> Iterator[None]:
    """huggingface_hub's retry warnings off for one download; a failure is one line of ours."""
    logger = logging.getLogger("huggingface_hub")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)


def load_from_hub(
    repo_id: str, revision: str | None, spec: str, sha256: str | None = None
) -> DANet:
    """Download (or find in the cache) ``model.safetensors`` and ``config.json`` of a Hub
    repository and load them, checked like any file.

    Args:
        repo_id: ``owner/repo``.
        revision: a branch, tag or commit (``None``: the default branch).
        spec: the source as the user wrote it, for messages.
        sha256: the expected digest of the weights file.
    """
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import (
        EntryNotFoundError,
        HfHubHTTPError,
        HFValidationError,
        LocalEntryNotFoundError,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    # Transport failures of the HTTP client below huggingface_hub (httpx2 in 2.x, httpx in 1.x)
    # are not OSErrors, and a failed file GET (after its retries) raises them unwrapped.
    transport: tuple[type[Exception], ...] = ()
    for client in ("httpx2", "httpx"):
        with contextlib.suppress(ImportError):
            transport += (importlib.import_module(client).HTTPError,)
    failures: tuple[type[Exception], ...] = (HfHubHTTPError, OSError, *transport)
    from huggingface_hub import constants

    offline = bool(constants.HF_HUB_OFFLINE)
    # Without a network, huggingface_hub retries each request with back-off for about 25 s,
    # logging every retry. A short connection probe first makes that a quiet cache lookup.
    reachable = offline or _hub_reachable(constants.ENDPOINT)
    try:
        with _quiet_hub_logs():
            files = {
                name: Path(
                    hf_hub_download(
                        repo_id, name, revision=revision, local_files_only=not reachable
                    )
                )
                for name in (CONFIG_NAME, WEIGHTS_NAME)
            }
    except HFValidationError as exc:  # a ValueError: malformed repo id, never reaches the network
        raise ModelNotFoundError.about(
            spec, f"not a valid Hub repository id ({first_line(exc)})"
        ) from None
    except LocalEntryNotFoundError:
        if offline:
            raise WeightsNotAvailableError.about(
                spec, "not in the local cache, and HF_HUB_OFFLINE is set (offline)"
            ) from None
        raise WeightsNotAvailableError.about(
            spec,
            "not in the local cache and the Hub cannot be reached; download it once "
            "while online, then HF_HUB_OFFLINE=1 uses the cache without the network",
        ) from None
    except RepositoryNotFoundError:
        raise WeightsNotAvailableError.about(spec, "no such repository on the Hub") from None
    except RevisionNotFoundError:
        raise WeightsNotAvailableError.about(
            spec, f"no revision {revision!r} in {repo_id}"
        ) from None
    except EntryNotFoundError:
        raise WeightsNotAvailableError.about(
            spec, f"repository has no {WEIGHTS_NAME} and {CONFIG_NAME}"
        ) from None
    except failures as exc:
        raise WeightsNotAvailableError.about(spec, f"download failed ({first_line(exc)})") from None
    check_sha256(files[WEIGHTS_NAME], sha256)
    config = read_config(files[CONFIG_NAME])
    return load_file(files[WEIGHTS_NAME], sha256=config.get("sha256"), config=config)
