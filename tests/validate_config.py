#!/usr/bin/env python3
"""Checks darklaunch deployment files before they reach a cluster.

    .venv/bin/python tests/validate_config.py FILE ...

* a ``.yaml``/``.yml`` file: every ``WasmPlugin`` in it is validated against
  Istio's CRD schema (``extensions.istio.io/v1alpha1``), then its
  ``pluginConfig`` is rendered the way istiod hands it to the proxy and
  loaded by the real darklaunch module in ``envoy --mode validate`` (which
  runs the plugin's ``on_configure``: a configuration the filter refuses
  fails, and Envoy's output names the JSON path);
* a ``.json`` file: a darklaunch plugin configuration, loaded the same way.

Exit status 0 when everything passes. Needs PyYAML and jsonschema (the
``.venv`` that ``make test`` installs), Envoy (``ENVOY_BIN`` or ``.venv``) and
the built module (``DARKLAUNCH_WASM`` or ``make build``).

The library part lives in ``tests/e2e/harness/istio.py``.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path
from typing import Iterable, Iterator, Optional

sys.path.insert(0, str(Path(__file__).resolve().parent / "e2e"))

import harness  # noqa: E402
from harness.istio import (  # noqa: E402
    WASMPLUGIN_API,
    crd_validator,
    istio_bootstrap,
    load_docs,
    schema_errors,
    wasmplugins,
)


def validate_in_envoy(plugin: dict, wasm_path=None, envoy_path: Optional[str] = None) -> tuple:
    """``envoy --mode validate`` of the WasmPlugin's filter: (exit code, output)."""
    wasm_path = wasm_path or harness.wasm_file()
    return harness.Envoy.validate(istio_bootstrap(plugin, wasm_path), envoy_path)


def plugin_json_as_wasmplugin(cfg: dict) -> dict:
    """A bare darklaunch configuration wrapped as a minimal WasmPlugin."""
    return {"apiVersion": WASMPLUGIN_API, "kind": "WasmPlugin",
            "metadata": {"name": "darklaunch", "namespace": "default"},
            "spec": {"url": "file:///darklaunch.wasm", "pluginName": "darklaunch",
                     "pluginConfig": cfg}}


def config_errors_from_output(out: str) -> list:
    """darklaunch's refusal lines (``darklaunch: invalid configuration: <path>: ...``)."""
    out_lines = []
    for ln in out.splitlines():
        m = re.search(r"darklaunch: ((?:invalid configuration|configuration).*)$", ln)
        if m and "[error]" in ln:
            out_lines.append("darklaunch: " + m.group(1))
    return out_lines


# --------------------------------------------------------------------------
# CLI
# --------------------------------------------------------------------------

def _check(plugin: dict, where: str, validator) -> bool:
    ok = True
    if validator is not None:
        for err in schema_errors(plugin, validator):
            print(f"{where}: schema: {err}")
            ok = False
    code, out = validate_in_envoy(plugin)
    if code != 0:
        errs = config_errors_from_output(out) or [harness._tail(out, 15)]
        for err in errs:
            print(f"{where}: envoy --mode validate: {err}")
        ok = False
    print(f"{where}: {'OK' if ok else 'FAILED'}")
    return ok


def iter_targets(paths: Iterable[str]) -> Iterator[tuple]:
    for p in paths:
        path = Path(p)
        if path.suffix == ".json":
            yield f"{p}", plugin_json_as_wasmplugin(json.loads(path.read_text())), False
            continue
        for i, doc in enumerate(wasmplugins(load_docs(path))):
            name = doc.get("metadata", {}).get("name", f"#{i}")
            yield f"{p}: WasmPlugin {name}", doc, True


def main(argv: list) -> int:
    if not argv or argv[0] in ("-h", "--help"):
        print(__doc__.split("\n\n")[0] + "\n\n" + __doc__.split("\n\n")[1])
        return 0 if argv else 2
    wasm = harness.wasm_file()
    if not wasm.is_file():
        print(f"darklaunch module not found at {wasm}: run `make build` or set DARKLAUNCH_WASM")
        return 2
    validator = crd_validator()
    ok, seen = True, 0
    for where, plugin, is_crd in iter_targets(argv):
        seen += 1
        ok = _check(plugin, where, validator if is_crd else None) and ok
    if not seen:
        print("no WasmPlugin found")
        return 1
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
