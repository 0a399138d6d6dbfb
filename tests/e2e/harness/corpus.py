"""tests/data/bad_configs.json: a valid base configuration and single-rule
mutations of it, each with the error the module gives (a JSON path first)."""

from __future__ import annotations

import copy
import json

from .paths import REPO_ROOT

BAD_CONFIGS = REPO_ROOT / "tests" / "data" / "bad_configs.json"


def bad_configs() -> list:
    """[(case, configuration)]: each case (``name``, ``error``, and its
    ``set``/``delete`` JSON pointers) applied to a copy of the base."""
    data = json.loads(BAD_CONFIGS.read_text())
    out = []
    for case in data["cases"]:
        cfg = copy.deepcopy(data["base"])
        for pointer, value in case.get("set", {}).items():
            *parents, last = pointer.strip("/").split("/")
            node = cfg
            for key in parents:
                node = node[int(key)] if isinstance(node, list) else node.setdefault(key, {})
            if isinstance(node, list):
                node.insert(int(last), value)
            else:
                node[last] = value
        for pointer in case.get("delete", []):
            *parents, last = pointer.strip("/").split("/")
            node = cfg
            for key in parents:
                node = node[int(key)] if isinstance(node, list) else node[key]
            del node[last]
        out.append((case, cfg))
    return out
