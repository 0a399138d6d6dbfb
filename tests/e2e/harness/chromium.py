"""Headless Chromium (Debian's ``chromium``, scripts/install_chromium.sh) on
a local HTML file: the DOM once its scripts have run, and a screenshot.

    from harness import chromium
    dom = chromium.dump_dom(page)                     # serialized DOM, str
    dom = chromium.dump_dom(page, fragment="q=price") # file://...#q=price
    png = chromium.screenshot(page, tmp_path / "page.png", window_size=(1280, 900))
    els = chromium.elements(dom)                      # [Element(tag, attrs, text, children)]
    rows = [e for e in chromium.walk(table) if e.tag == "tr"]

Each call is one short-lived browser with a throwaway profile, in its own
process group (killed whole on time out), with ``--no-sandbox`` (root, and
containers without user namespaces) and without network: every host name
resolves to nothing, so a page that tried to load something from outside
would show it instead of leaking. ``CHROMIUM_BIN`` overrides the binary.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path
from typing import Optional, Union

PathLike = Union[str, Path]


class ChromiumError(RuntimeError):
    """Chromium failed, timed out or wrote nothing; ``log`` is its stderr."""

    def __init__(self, message: str, log: str = ""):
        super().__init__(message + (f"\n{log[-3000:]}" if log else ""))
        self.log = log


def chromium_bin() -> str:
    """CHROMIUM_BIN, else `chromium` on PATH, else /usr/bin/chromium."""
    return os.environ.get("CHROMIUM_BIN") or shutil.which("chromium") or "/usr/bin/chromium"


def _url(html_path: PathLike, fragment: str = "") -> str:
    url = Path(html_path).resolve().as_uri()
    return f"{url}#{fragment}" if fragment else url


def _run(args: list, timeout: float) -> subprocess.CompletedProcess:
    """Runs chromium with ``args`` after the common flags; raises on failure."""
    binary = chromium_bin()
    if not (Path(binary).exists() or shutil.which(binary)):
        raise ChromiumError(f"chromium not found at {binary}: run `make chromium` "
                            "(scripts/install_chromium.sh) or set CHROMIUM_BIN")
    with tempfile.TemporaryDirectory(prefix="darklaunch-chromium-") as profile:
        cmd = [binary, "--headless", "--no-sandbox", "--disable-gpu",
               "--disable-dev-shm-usage", f"--user-data-dir={profile}",
               "--no-first-run", "--no-default-browser-check", "--disable-extensions",
               "--disable-background-networking", "--disable-component-update",
               "--disable-sync", "--host-resolver-rules=MAP * ~NOTFOUND",
               *args]
        proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, start_new_session=True)
        try:
            out, err = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            _kill_group(proc)
            out, err = proc.communicate()
            raise ChromiumError(f"chromium timed out after {timeout}s: {' '.join(args)}",
                                err.decode(errors="replace"))
        finally:
            _kill_group(proc)  # renderers and zygotes left behind, if any
    result = subprocess.CompletedProcess(cmd, proc.returncode, out.decode(errors="replace"),
                                         err.decode(errors="replace"))
    if result.returncode != 0:
        raise ChromiumError(f"chromium exited with {result.returncode}: {' '.join(args)}",
                            result.stderr)
    return result


def _kill_group(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)  # start_new_session: group id = pid
    except (ProcessLookupError, PermissionError):
        pass


def dump_dom(html_path: PathLike, *, fragment: str = "", budget_ms: int = 3000,
             timeout: float = 90.0) -> str:
    """The DOM of the page at ``html_path`` (``#fragment`` appended to its
    URL), serialized after load and after its scripts ran (with up to
    ``budget_ms`` of virtual time for timers)."""
    result = _run([f"--virtual-time-budget={budget_ms}", "--dump-dom",
                   _url(html_path, fragment)], timeout)
    if "<html" not in result.stdout:
        raise ChromiumError("chromium dumped no DOM", result.stderr)
    return result.stdout


def screenshot(html_path: PathLike, png_path: PathLike, *, window_size=(1280, 900),
               fragment: str = "", budget_ms: int = 3000, timeout: float = 90.0) -> Path:
    """A PNG of the page's first ``window_size`` (width, height) pixels at
    ``png_path``; returns that path."""
    png = Path(png_path).resolve()
    png.parent.mkdir(parents=True, exist_ok=True)
    if png.exists():
        png.unlink()
    width, height = window_size
    result = _run([f"--virtual-time-budget={budget_ms}", f"--screenshot={png}",
                   f"--window-size={width},{height}", "--hide-scrollbars",
                   _url(html_path, fragment)], timeout)
    if not png.is_file() or png.stat().st_size == 0:
        raise ChromiumError(f"chromium wrote no screenshot at {png}", result.stderr)
    return png


def png_size(png_path: PathLike) -> tuple:
    """(width, height) from a PNG's IHDR chunk."""
    data = Path(png_path).read_bytes()[:24]
    if data[:8] != b"\x89PNG\r\n\x1a\n" or data[12:16] != b"IHDR":
        raise ValueError(f"{png_path} is not a PNG")
    return int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")


@dataclass
class Element:
    """One element of a parsed DOM: tag, attributes (name → value, ``None``
    for a bare attribute such as ``hidden``), and its text content
    (children's included)."""

    tag: str
    attrs: dict
    text: str = ""
    children: list = field(default_factory=list)

    def get(self, name: str, default: Optional[str] = None) -> Optional[str]:
        return self.attrs.get(name, default)

    def has_class(self, name: str) -> bool:
        return name in (self.attrs.get("class") or "").split()


# Elements that never have content (no end tag in HTML).
_VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta",
         "source", "track", "wbr"}


class _Parser(HTMLParser):
    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.all: list = []
        self.open: list = []

    def handle_starttag(self, tag, attrs):
        el = Element(tag, dict(attrs))
        if self.open:
            self.open[-1].children.append(el)
        self.all.append(el)
        if tag not in _VOID:
            self.open.append(el)

    def handle_startendtag(self, tag, attrs):
        self.handle_starttag(tag, attrs)
        if tag not in _VOID and self.open and self.open[-1].tag == tag:
            self.open.pop()

    def handle_endtag(self, tag):
        # Close up to the matching element (the dumped DOM is well formed).
        for i in range(len(self.open) - 1, -1, -1):
            if self.open[i].tag == tag:
                del self.open[i:]
                break

    def handle_data(self, data):
        for el in self.open:
            el.text += data


def elements(dom: str) -> list:
    """Every element of ``dom`` (as dump_dom returns it), in document order."""
    p = _Parser()
    p.feed(dom)
    p.close()
    return p.all


def walk(el: Element):
    """``el``'s descendants, in document order."""
    for child in el.children:
        yield child
        yield from walk(child)
