"""Atomic file writes: a file is either complete or absent, whatever kills the writer.

The data goes to a hidden temp file beside the target, is fsynced, and is moved over the
target with :func:`os.replace`. Temp files carry the writer's process id, so a later write to
the same target removes those of a writer that was killed (SIGKILL, power loss).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import secrets
from collections.abc import Callable
from pathlib import Path

__all__ = ["atomic_write", "remove_stale_temps", "temp_path"]


#: Longest file name (bytes) kept whole inside a temp name. With the dot, the process id and
#: the random part (at most 22 bytes more) a temp name stays under the 255-byte limit of
#: common file systems, so any name that can be written has a temp name that can be too.
MAX_TEMP_STEM_BYTES = 200
_SHORTENED_BYTES = 180


def _temp_stem(name: str) -> str:
    """``name`` itself, or a shortened prefix plus a digest of the whole name if it is long."""
    raw = os.fsencode(name)
    if len(raw) <= MAX_TEMP_STEM_BYTES:
        return name
    digest = hashlib.sha256(raw).hexdigest()[:8]
    return f"{os.fsdecode(raw[:_SHORTENED_BYTES])}~{digest}"


def temp_path(path: Path) -> Path:
    """A hidden temp file beside ``path``: ``.NAME.PID.RANDOM.tmp`` (a long NAME shortened)."""
    return path.with_name(f".{_temp_stem(path.name)}.{os.getpid()}.{secrets.token_hex(4)}.tmp")


def _is_live_process(pid: int) -> bool:
    if pid == os.getpid():  # this process removes its temp files as soon as a write fails
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # exists, but belongs to another user
        return True
    return True


def remove_stale_temps(path: Path) -> None:
    """Delete the temp files of ``path`` (see :func:`temp_path`) whose writer is gone."""
    if os.name != "posix":  # os.kill(pid, 0) only probes a process on POSIX
        return
    prefix = f".{_temp_stem(path.name)}."
    pattern = re.compile(re.escape(prefix) + r"(\d+)\.[0-9a-f]{8}\.tmp")
    with contextlib.suppress(OSError):
        for name in os.listdir(path.parent):
            match = name.startswith(prefix) and pattern.fullmatch(name)
            if match and not _is_live_process(int(match[1])):
                with contextlib.suppress(OSError):
                    os.unlink(path.parent / name)


def atomic_write(path: str | os.PathLike[str], write: Callable[[Path], object]) -> Path:
    """Run ``write(tmp)`` to fill a temp file, then move it over ``path`` in one step.

    Missing parent folders are created. On any error (KeyboardInterrupt included) the temp
    file is removed and the error propagates; ``path`` keeps its previous content.

    Example:
        >>> atomic_write("notes.txt", lambda tmp: tmp.write_text("hello"))  # doctest: +SKIP
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temps(path)
    tmp = temp_path(path)
    try:
        write(tmp)
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        if exc.filename is None or not _same(exc.filename, tmp):
            raise
        # name the file asked for, never the hidden temp (the errno picks the subclass)
        raise OSError(exc.errno, exc.strerror, os.fspath(path)) from exc
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def _same(name: object, tmp: Path) -> bool:
    return isinstance(name, (str, bytes, os.PathLike)) and os.fsdecode(name) == os.fspath(tmp)
