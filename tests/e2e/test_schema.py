"""schema/darklaunch.schema.json, the JSON Schema generated from the
configuration types (``darklaunch-report schema``; report/tests/schema.rs
fails when the file is stale), held against the module's own rules:

* it accepts every configuration the repository ships (README, examples/,
  the bootstraps in envoy/), which ``darklaunch-report validate`` also accepts;
* it rejects each configuration of the bad corpus (tests/data/bad_configs.json)
  that JSON Schema can describe, at the same place the module names, and the
  module rejects all of them;
* on tricky values of every field with a pattern or a bound, it says what
  the module says.

What the schema cannot express, and so accepts while the module refuses, is
listed in CANNOT_EXPRESS; the corpus has one case of each, marked
``"schema": "accepts"``. The validator remains the authority for those.

The patterns are read with ECMA 262 semantics, as JSON Schema says; Python's
``re`` (which jsonschema uses) differs in one way that matters here: ``$``
also matches before a final newline, so values ending in "\\n" are left out
of the comparison.

``darklaunch-report`` is the binary ``make report`` builds (DARKLAUNCH_REPORT
points at it); it runs the filter's own parser, not Envoy.
"""

from __future__ import annotations

import copy
import json
import os
import re
import subprocess
from pathlib import Path

import jsonschema
import pytest
import yaml

import harness
from harness import istio

ROOT = harness.REPO_ROOT
SCHEMA = ROOT / "schema" / "darklaunch.schema.json"
STRING_VALUE = "type.googleapis.com/google.protobuf.StringValue"

# The module's rules JSON Schema cannot state (the schema accepts these).
CANNOT_EXPRESS = {
    "launch names unique across launches: uniqueItems compares whole launches",
    "flag_header different from shadow_header (case-insensitively): JSON Schema cannot "
    "compare two values",
    "a placeholder name used twice in path_template: a pattern would need a back-reference",
    "a day past the end of its month in expires (2026-02-30): the pattern checks 01-31 only",
    "a proto_descriptor that is not a base64 FileDescriptorSet: a pattern cannot parse "
    "protobuf",
    "an integer field written with a zero fraction (1000.0): JSON Schema's integer type "
    "includes it, serde refuses it (istiod writes pluginConfig numbers without fraction, so "
    "only hand-written JSON meets this)",
}


def _report() -> Path:
    exe = Path(os.environ.get("DARKLAUNCH_REPORT") or ROOT / "target" / "debug"
               / "darklaunch-report")
    if not exe.is_file():
        pytest.fail(f"darklaunch-report not found at {exe}: run `make report` "
                    "or set DARKLAUNCH_REPORT", pytrace=False)
    return exe


@pytest.fixture(scope="module")
def validator():
    schema = json.loads(SCHEMA.read_text())
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


def module_verdicts(configs: list, tmp_path: Path) -> list:
    """For each configuration (a dict, or raw JSON text), the module's error
    line (``launches[0].x: ...``) or None when it accepts it, from one
    ``darklaunch-report validate -q`` run over one file per configuration."""
    files = []
    for i, cfg in enumerate(configs):
        f = tmp_path / f"cfg-{i:03d}.json"
        f.write_text(cfg if isinstance(cfg, str) else json.dumps(cfg))
        files.append(f)
    proc = subprocess.run([str(_report()), "validate", "-q", *map(str, files)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode in (0, 1), proc.stdout + proc.stderr
    errors = {}
    for line in proc.stdout.splitlines()[:-1]:
        if ": warning: " in line:
            continue
        name, _, rest = line.partition(": error: ")
        assert rest, line
        errors[name] = rest
    return [errors.get(str(f)) for f in files]


def _module_path(path) -> str:
    """A jsonschema error path as darklaunch writes JSON paths."""
    out = ""
    for p in path:
        out += f"[{p}]" if isinstance(p, int) else (f".{p}" if out else str(p))
    return out


# --------------------------------------------------------------------------
# The configurations the repository ships
# --------------------------------------------------------------------------

LAUNCH_FIELDS = {"name", "dark_cluster", "dark_authority", "match", "sample", "users",
                 "unsafe_methods", "timeout_ms", "max_body_bytes", "request_headers", "limits",
                 "breaker", "compare", "noise", "expires"}
BASE_LAUNCH = {"name": "base", "dark_cluster": "c", "sample": {"percent": 5}}


def _in_yaml_doc(doc) -> list:
    """Plugin configurations in a YAML document: a WasmPlugin's pluginConfig
    (as istiod renders it) or the StringValue of an Envoy Wasm filter."""
    found = []
    if isinstance(doc, dict) and doc.get("kind") == "WasmPlugin":
        found.append(json.loads(istio.istio_plugin_config_json(doc["spec"]["pluginConfig"])))
        return found

    def walk(node):
        if isinstance(node, dict):
            if node.get("@type") == STRING_VALUE and "launches" in node.get("value", ""):
                found.append(json.loads(node["value"]))
            for v in node.values():
                walk(v)
        elif isinstance(node, list):
            for v in node:
                walk(v)
    walk(doc)
    return found


def _readme_configs(path: Path) -> list:
    """(where, configuration) for each fenced block of a Markdown file that
    is a plugin configuration, a fragment of launch fields, a WasmPlugin or
    an Envoy filter."""
    found = []
    blocks = re.findall(r"^```(json|yaml)\n(.*?)^```", path.read_text(), re.S | re.M)
    for i, (lang, text) in enumerate(blocks):
        where = f"{path.relative_to(ROOT)} block {i} ({lang})"
        if lang == "json":
            try:
                cfg = json.loads(text)
            except json.JSONDecodeError:
                try:  # a fragment such as `"request_headers": {...}`
                    frag = json.loads("{" + text + "}")
                except json.JSONDecodeError:
                    continue
                if set(frag) <= LAUNCH_FIELDS:
                    found.append((where, {"launches": [dict(copy.deepcopy(BASE_LAUNCH), **frag)]}))
                continue
            if isinstance(cfg, dict) and "launches" in cfg:
                found.append((where, cfg))
        else:
            for doc in yaml.safe_load_all(text):
                found += [(where, c) for c in _in_yaml_doc(doc)]
    return found


def shipped_configs() -> list:
    found = _readme_configs(ROOT / "README.md")
    for f in sorted((ROOT / "examples").rglob("*.md")):
        found += _readme_configs(f)
    for f in sorted((ROOT / "examples").rglob("*.y*ml")) + list(harness.ENVOY_BOOTSTRAPS):
        for doc in yaml.safe_load_all(f.read_text()):
            found += [(str(f.relative_to(ROOT)), c) for c in _in_yaml_doc(doc)]
    return found


def test_schema_accepts_every_shipped_configuration(validator, tmp_path):
    configs = shipped_configs()
    where = [w for w, _ in configs]
    # README: the configuration, the credentials fragment, the Envoy filter, the
    # WasmPlugin; the two Istio examples; the bootstraps in envoy/.
    assert len(configs) >= 7, where
    assert any(w.startswith("envoy/demo.yaml") for w in where), where
    assert any(w.startswith("envoy/route_scoped.yaml") for w in where), where
    assert sum(w.startswith("examples/istio/wasmplugin") for w in where) == 2, where
    for w, cfg in configs:
        errors = [f"{_module_path(e.absolute_path)}: {e.message}"
                  for e in validator.iter_errors(cfg)]
        assert errors == [], w
    assert module_verdicts([c for _, c in configs], tmp_path) == [None] * len(configs), where


# --------------------------------------------------------------------------
# The bad corpus
# --------------------------------------------------------------------------

def test_schema_rejects_the_bad_corpus_where_it_can(validator, tmp_path):
    cases = harness.bad_configs()
    assert len(cases) >= 40
    verdicts = module_verdicts([cfg for _, cfg in cases], tmp_path)
    accepted = set()
    for (case, cfg), module_error in zip(cases, verdicts):
        name = case["name"]
        # The module refuses every case, with the expected path and reason.
        assert module_error and module_error.startswith(case["error"]), (name, module_error)
        module_path = module_error.split(": ")[0]
        errors = list(validator.iter_errors(cfg))
        if case["schema"] == "rejects":
            assert errors, f"{name}: the schema accepts it"
            # ... at the module's field or one of its parents.
            paths = [_module_path(e.absolute_path) for e in errors]
            assert any(module_path.startswith(p) for p in paths), (name, module_path, paths)
        else:
            assert case["schema"] == "accepts", name
            assert errors == [], f"{name}: the schema now rejects it; mark it \"rejects\""
            accepted.add(case["why"])
    assert accepted == CANNOT_EXPRESS


# --------------------------------------------------------------------------
# Tricky values: the schema says what the module says
# --------------------------------------------------------------------------

TRICKY = {
    "/launches/0/name": ["a", "0_a", "orders-v2", "a" * 64, "a" * 65, "-a", "_a", "A", "",
                         "a b", "a.b", "é", "a\t"],
    "/flag_header": ["x-a", "X-A", "!#$%&'*+-.^_`|~", "a b", "", "a:b", "é", "a\x7f"],
    "/launches/0/dark_cluster": ["c", " c ", "", " ", "\t", "outbound|8080|v2|x"],
    "/launches/0/dark_authority": ["a:8080", "", "a\tb", "a\x01", "a\x7f", "é"],
    "/launches/0/match/path_prefix": ["/", "/a", "/é", "a", "", "/a?b", "/a b", "/a\x01",
                                      "/a\x7f", "/a#b"],
    "/launches/0/match/path_template": ["/", "/u/{id}", "/{a}/{b}", "/u/{id}/x", "/u/x{id}",
                                        "/u/{id", "/u/id}", "/u/{}", "/u/{a-b}", "u/{id}",
                                        "/u/{id}?", "//{a_1}//"],
    "/launches/0/match/methods/0": ["GET", "M-SEARCH", "X_Y", "get", "", "GET1", "G T"],
    "/launches/0/match/grpc_methods/0": ["pkg.Svc/Get", "Svc/*", "a.b_1.C/_x", "pkg.Svc",
                                         "/pkg.Svc/Get", "pkg..Svc/Get", "pkg.Svc/Get/x",
                                         "1pkg.Svc/Get", "pkg.Svc/G-t", "pkg.Svc/*x", "",
                                         "pkg.Svc/", ".pkg.Svc/Get", "pkg.Svc/Gét"],
    "/launches/0/sample/sticky_key/0": ["header:x-user", "cookie:session", "query:q",
                                        "query:a:b", "query:é", "header:", "cookie:a b",
                                        "query:a=b", "query:a&b", "query:\x01", "body:x",
                                        "header", "Header:x", "header:a:b"],
    "/launches/0/request_headers/set/x-env": ["dark", "", "a\tb", "a\x01b", "a\x7f", 1, None],
    "/launches/0/compare/ignore/0": ["", "/", "/a", "/a/*/b", "/a~0", "/a~1b", "/~01", "a",
                                     "/a~2", "/a~", "/~"],
    "/launches/0/expires": ["2026-12-31T23:59:59Z", "2026-12-31T23:59:59.5Z",
                            "2026-12-31T23:59:59.Z", "2026-12-31T23:59:59+00:00",
                            "2026-12-31T23:59:60Z", "1970-01-01T00:00:00Z",
                            "1969-12-31T23:59:59Z", "2026-12-31T23:59:59+01:00",
                            "2026-12-31 23:59:59Z", "2026-12-31t23:59:59z", "2026-13-01T00:00:00Z",
                            "2026-12-31T24:00:00Z", "2026-12-31", "2024-02-29T00:00:00Z"],
    "/launches/0/sample/percent": [0, 100, 50.5, 100.0001, -0.0001, "5", None],
    "/launches/0/timeout_ms": [1, 60000, 0, 60001, -1, 2.5, None],
    "/launches/0/max_body_bytes": [0, 16777216, 16777217, -1],
    "/launches/0/limits/max_rps": [0, 0.5, 1e9, -0.1],
    "/launches/0/limits/max_in_flight": [1, 0, 4294967295, 4294967296],
    "/launches/0/breaker/failure_ratio": [1, 0.0001, 0, 1.01, -1],
    "/launches/0/breaker/window_s": [1, 3600, 0, 3601],
    "/launches/0/breaker/open_s": [1, 86400, 0, 86401],
    "/launches/0/compare/numeric_tolerance": [0, 0.999, 1, -0.1],
    "/launches/0/compare/body": ["none", "bytes", "json", "auto", "xml", "JSON", None],
    "/launches/0/noise/percent": [0, 100, 101],
    "/mismatch_log_per_minute": [0, 4294967295, 4294967296, -1],
    "/launches/0/unsafe_methods": [True, False, None, "true"],
}


def _with(pointer: str, value) -> dict:
    cfg = {"launches": [copy.deepcopy(BASE_LAUNCH)]}
    *parents, last = pointer.strip("/").split("/")
    node = cfg
    for i, key in enumerate(parents):
        nxt = parents[i + 1] if i + 1 < len(parents) else last
        if isinstance(node, list):
            node = node[int(key)]
        else:
            node = node.setdefault(key, [] if nxt.isdigit() else {})
    if isinstance(node, list):
        node.insert(int(last), value)
    else:
        node[last] = value
    if pointer.startswith("/launches/0/noise/"):
        node.setdefault("cluster", "c_copy")
    return cfg


def test_schema_agrees_with_the_module_on_tricky_values(validator, tmp_path):
    cases = [(p, v, _with(p, v)) for p, values in TRICKY.items() for v in values]
    verdicts = module_verdicts([c for _, _, c in cases], tmp_path)
    disagree = []
    for (pointer, value, cfg), module_error in zip(cases, verdicts):
        schema_ok = validator.is_valid(cfg)
        if schema_ok != (module_error is None):
            disagree.append((pointer, value, schema_ok, module_error))
    # 2024-02-29 exists and 2026-12-31T23:59:60Z is a leap second the module accepts:
    # both valid, so nothing here needs CANNOT_EXPRESS.
    assert disagree == []
    # Both outcomes occur for every field.
    for pointer in TRICKY:
        outcomes = {m is None for (p, _, _), m in zip(cases, verdicts) if p == pointer}
        assert outcomes == {True, False}, pointer


def test_checked_in_schema_is_the_generators():
    """The same check as report/tests/schema.rs, from the binary CI runs."""
    proc = subprocess.run([str(_report()), "schema"], capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == SCHEMA.read_text(), (
        "schema/darklaunch.schema.json is stale: "
        "cargo run -q -p darklaunch-report -- schema > schema/darklaunch.schema.json")
