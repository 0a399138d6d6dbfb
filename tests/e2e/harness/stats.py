"""Reading Envoy's stats: sums over stat names, the ``darklaunch mismatch``
log lines, the Prometheus text format, and waiting for an Envoy's
``darklaunch_*`` series to stop changing."""

from __future__ import annotations

import json
import re
import time
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .envoy import Envoy


def sum_prefix(stats: dict, prefix: str) -> int:
    """Sum of the values whose key starts with ``prefix`` (e.g. ``skipped.``)."""
    return sum(v for k, v in stats.items() if k.startswith(prefix))


MISMATCH_MARK = "darklaunch mismatch "
SAMPLE_MARK = "darklaunch sample "


def _marked_objects(text: str, mark: str) -> list:
    out = []
    for line in text.splitlines():
        i = line.find(mark)
        if i < 0:
            continue
        try:
            obj, _ = json.JSONDecoder().raw_decode(line[i + len(mark):].lstrip())
        except ValueError:
            continue
        out.append(obj)
    return out


def parse_mismatch_lines(text: str) -> list:
    """The JSON objects of the ``darklaunch mismatch {...}`` lines of a log."""
    return _marked_objects(text, MISMATCH_MARK)


def parse_sample_lines(text: str) -> list:
    """The JSON objects of the ``darklaunch sample {...}`` lines of a log."""
    return _marked_objects(text, SAMPLE_MARK)


def parse_prometheus(text: str) -> list:
    """[(metric_name, {label: value}, value_str)] for every sample line."""
    out = []
    rx = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)')
    lab = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = rx.match(line)
        if m:
            out.append((m.group(1), dict(lab.findall(m.group(2) or "")), m.group(3)))
    return out


def darklaunch_series(envoy: "Envoy", prefix: str = "darklaunch_") -> dict:
    """An Envoy's ``/stats/prometheus`` samples whose name starts with ``prefix``:
    {(name, frozenset(labels.items())): float}."""
    return {(name, frozenset(labels.items())): float(value)
            for name, labels, value in parse_prometheus(envoy.prometheus())
            if name.startswith(prefix)}


def wait_series_stable(envoy: "Envoy", quiet: float = 1.3, timeout: float = 15.0,
                       prefix: str = "darklaunch_") -> dict:
    """Waits until ``darklaunch_series(envoy)`` stays the same for ``quiet``
    seconds, longer than the harness's 1 s stats flush (histograms in
    /stats/prometheus change only at a flush); returns it."""
    deadline = time.monotonic() + timeout
    last, since = None, time.monotonic()
    while True:
        now = darklaunch_series(envoy, prefix)
        if now != last:
            last, since = now, time.monotonic()
        elif time.monotonic() - since >= quiet:
            return now
        if time.monotonic() >= deadline:
            raise TimeoutError(f"{envoy.name}: {prefix}* still changing after {timeout}s")
        time.sleep(0.1)
