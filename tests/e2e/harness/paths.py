"""Where the repository and the darklaunch module are."""

from __future__ import annotations

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[3]
DEFAULT_WASM = REPO_ROOT / "target" / "module" / "darklaunch.wasm"


def wasm_file() -> Path:
    """DARKLAUNCH_WASM, else target/module/darklaunch.wasm (make build)."""
    env = os.environ.get("DARKLAUNCH_WASM")
    return Path(env).resolve() if env else DEFAULT_WASM
