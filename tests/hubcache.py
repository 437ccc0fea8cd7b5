"""Put a folder into a Hugging Face Hub cache as if it had been downloaded (no network).

The cache layout huggingface_hub reads offline: ``models--{owner}--{repo}/refs/main`` holds a
commit hash and ``snapshots/{commit}/`` holds the files. Used by the export-hub test and by
CI's wheel check (``python tests/hubcache.py FOLDER CACHE owner/repo``).
"""

from __future__ import annotations

import hashlib
import shutil
import sys
from pathlib import Path


def prefill(folder: Path, cache: Path, repo_id: str) -> Path:
    """Copy ``folder``'s files into ``cache`` as the main revision of ``repo_id``."""
    owner, name = repo_id.split("/")
    repo = cache / f"models--{owner}--{name}"
    files = sorted(p for p in folder.iterdir() if p.is_file())
    commit = hashlib.sha1(b"".join(p.name.encode() + p.read_bytes() for p in files)).hexdigest()
    snapshot = repo / "snapshots" / commit
    snapshot.mkdir(parents=True, exist_ok=True)
    for path in files:
        shutil.copyfile(path, snapshot / path.name)
    (repo / "refs").mkdir(exist_ok=True)
    (repo / "refs" / "main").write_text(commit)
    return snapshot


if __name__ == "__main__":
    source, cache_dir, repo = sys.argv[1:4]
    print(prefill(Path(source), Path(cache_dir), repo))
