"""The samples inspector's HTML page in a real browser.

``darklaunch-report samples --html`` on report/tests/fixtures/samples.log (a
synthetic Envoy log in the sample format, written by samples_log.py) plus a
few hostile lines, then headless Chromium (Debian's, `make chromium`) opens
the page without network and the DOM is checked after its script ran: the
groups with their data attributes, values from traffic shown as text (no
element they could have injected), no reference to anything outside the
file, and the filter box really filtering. A screenshot is kept under the
test's tmp directory.

``inspect(report_path, tmp_path, *logs)`` and the checks below are meant
for a later test feeding samples logged by a real Envoy: pass its log file.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import harness
from harness import chromium
# darklaunch-report's binary (built in this checkout: REPO_ROOT/target/debug).
from test_report import report_path  # noqa: F401

FIXTURE = harness.REPO_ROOT / "report" / "tests" / "fixtures" / "samples.log"
ENVOY_PREFIX = ("[2026-12-01 00:13:00.000][41][info][wasm] [source/extensions/common/wasm/"
                "context.cc:1192] wasm log darklaunch darklaunch: darklaunch sample ")
EVIL_IMG = '<img src="http://evil.example/x.png" onerror="alert(1)">'


def hostile_log(path: Path) -> Path:
    """Samples whose launch, header value and difference values try to
    inject markup, and a bad line."""
    sample = {
        "v": 1, "launch": "evil</section><script>alert(2)</script>", "request_id": EVIL_IMG,
        "method": "GET", "path": "/x?<b>", "shape": "deadbeef", "kinds": ["headers", "body"],
        "fields": ["/html"], "headers": ["x-note"],
        "primary": {"status": 200, "headers": {"x-note": EVIL_IMG}},
        "dark": {"status": 200, "headers": {"x-note": "</td></tr></table><a href=\"https://evil.example/\">x</a>"}},
        "differences": [{"pointer": "/html", "field": "/html", "kind": "value",
                         "primary": json.dumps(EVIL_IMG), "dark": "\"<!-- </script> -->\""}],
    }
    path.write_text(ENVOY_PREFIX + json.dumps(sample) + "\n"
                    + ENVOY_PREFIX + '{"v":1,"launch":"cut\n', encoding="utf-8")
    return path


def inspect(report: Path, tmp_path: Path, *logs: Path, args=()) -> tuple:
    """Runs ``samples --html`` on ``logs``; (page path, --json view)."""
    page = tmp_path / "samples.html"
    proc = subprocess.run([str(report), "samples", "--html", str(page), "--json", *args,
                           *map(str, logs)], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert page.is_file(), proc.stderr
    return page, json.loads(proc.stdout)


def assert_self_contained(els: list) -> None:
    """No element loads or links anything: no src/href/srcset/action/
    poster at all, no <link>, <img>, <iframe>, <object>, <embed>; styles
    inline without url() or @import."""
    for e in els:
        assert e.tag not in ("link", "img", "iframe", "object", "embed", "base", "frame"), e
        for attr in ("src", "href", "srcset", "action", "poster", "formaction", "background"):
            assert attr not in e.attrs, (e.tag, e.attrs)
        if e.tag == "style":
            assert "url(" not in e.text and "@import" not in e.text
    scripts = [e for e in els if e.tag == "script"]
    assert [s.get("type") for s in scripts] == ["application/json", None], scripts


def test_inspector_page_in_chromium(report_path, tmp_path):  # noqa: F811
    probe = subprocess.run([str(report_path), "samples", "--help"], capture_output=True,
                           text=True, timeout=60)
    assert probe.returncode == 0, (
        f"{report_path} has no `samples` subcommand: DARKLAUNCH_REPORT or CARGO_TARGET_DIR "
        "points at another checkout's build?")
    page, view = inspect(report_path, tmp_path, FIXTURE, hostile_log(tmp_path / "hostile.log"))
    assert view["summary"]["samples"] == 17
    assert view["summary"]["bad_lines"] == 1

    dom = chromium.dump_dom(page)
    els = chromium.elements(dom)
    body = next(e for e in els if e.tag == "body")
    # The script ran, parsed the embedded view and counted the groups.
    assert body.get("data-ready") == "true", dom[:2000]
    groups = [e for e in els if e.has_class("group")]
    shown = next(e for e in els if e.get("id") == "shown")
    assert shown.text == f"{len(groups)} of {len(groups)} groups shown · 17 samples"
    filt = [e for e in els if e.tag == "input" and e.get("id") == "filter"]
    assert len(filt) == 1 and filt[0].get("type") == "search"

    # Groups, in the view's order, with their data attributes.
    fields = [e.get("data-field") for e in groups if e.get("data-group") == "field"]
    assert fields == [g["field"] for g in view["fields"]]
    assert fields[0] == "/items/*/price"
    headers = [e.get("data-header") for e in groups if e.get("data-group") == "header"]
    assert headers == [g["header"] for g in view["headers"]]
    statuses = [e.get("data-status") for e in groups if e.get("data-group") == "status"]
    assert statuses == ["200 → 500", "200 → 404"]
    price = next(e for e in groups if e.get("data-field") == "/items/*/price")
    samples = [c for c in price.children if c.tag == "article" and c.has_class("sample")]
    assert len(samples) == 7
    first = samples[0]
    assert first.get("data-request-id") == "5f0c1a2b-77aa-4c1e-9d0e-0123456789ab"
    diff = next(c for c in first.children if c.tag == "table" and c.has_class("diff"))
    rows = [e for e in chromium.walk(diff) if e.tag == "tr" and e.has_class("difference")]
    cells = {r.get("data-pointer"): ([c.text for c in r.children if c.has_class("primary")],
                                     [c.text for c in r.children if c.has_class("dark")])
             for r in rows}
    assert cells["/items/3/price"] == (["10.0"], ["10.5"])
    assert cells["/currency"] == (['"EUR"'], ["(absent)"])

    # Values from traffic are text: shown as written, never elements.
    texts = [e.text for e in els if e.tag == "code"]
    assert '"<script>alert(\\"xss\\")</script>"' in texts
    assert json.dumps(EVIL_IMG) in texts
    assert EVIL_IMG in texts
    assert '"<!-- </script> -->"' in texts
    evil = [e for e in groups if (e.get("data-launches") or "").startswith("evil")]
    assert evil and all(e.get("data-launches") == "evil</section><script>alert(2)</script>"
                        for e in evil)
    assert not [e for e in els if e.tag == "a"]
    assert_self_contained(els)
    errors = [e.text for e in els if e.has_class("error")]
    assert len(errors) == 1 and errors[0].endswith(
        "hostile.log:2: truncated sample JSON (EOF while parsing a string at column 160)")

    # The filter: #q= in the URL fills the box; non-matching groups hide.
    dom = chromium.dump_dom(page, fragment="q=x-cache")
    els = chromium.elements(dom)
    assert next(e for e in els if e.tag == "body").get("data-filter") == "x-cache"
    groups = [e for e in els if e.has_class("group")]
    visible = [(e.get("data-group"), e.get("data-field") or e.get("data-header") or
                e.get("data-shape") or e.get("data-status"))
               for e in groups if "hidden" not in e.attrs]
    # The header group, the fields of samples that differ in x-cache, and
    # the shapes listing it.
    assert ("header", "x-cache") in visible
    assert ("field", "/results/*/score") in visible
    assert ("field", "/items/*/price") not in visible
    assert ("status", "200 → 500") not in visible
    assert {("shape", "6c7d8e9f"), ("shape", "f9e8d7c6")} <= set(visible)
    # A kind of group with none left hides its heading.
    sections = {e.get("id"): "hidden" in e.attrs for e in els
                if e.tag == "section" and e.has_class("groups")}
    assert sections == {"by-field": False, "by-header": False, "by-status": True,
                        "by-shape": False}
    score = next(e for e in groups if e.get("data-field") == "/results/*/score")
    shown_samples = [c for c in score.children if c.tag == "article" and "hidden" not in c.attrs]
    assert [s.get("data-request-id") for s in shown_samples] == [
        view["fields"][1]["examples"][1]["request_id"]]
    shown = next(e for e in els if e.get("id") == "shown")
    assert shown.text.startswith(f"{len(visible)} of {len(groups)} groups shown")
    # By launch too.
    els = chromium.elements(chromium.dump_dom(page, fragment="q=search-v3"))
    visible = {e.get("data-field") for e in els if e.has_class("group")
               and e.get("data-group") == "field" and "hidden" not in e.attrs}
    assert visible == {"/results/*/score", "/results"}

    # A screenshot of the page as a reviewer sees it.
    png = chromium.screenshot(page, tmp_path / "inspector.png", window_size=(1280, 900))
    assert png.parent == tmp_path
    assert chromium.png_size(png) == (1280, 900)
    assert png.stat().st_size > 20_000, "a blank page compresses to a few KiB"


def test_inspector_page_for_one_launch(report_path, tmp_path):  # noqa: F811
    page, view = inspect(report_path, tmp_path, FIXTURE, args=("--launch", "orders-v2"))
    els = chromium.elements(chromium.dump_dom(page))
    assert {e.get("data-launch") for e in els if e.has_class("sample")} == {"orders-v2"}
    assert view["summary"]["samples"] == 13
