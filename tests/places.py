"""Where the tests find the checkout and the shared data beside it, wherever a test sits."""

from pathlib import Path

#: The repository's root (the folder holding ``pyproject.toml``).
ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"
#: The read-only data beside the checkout (``../shared``); tests that need it skip without it.
SHARED = ROOT.parent / "shared"
