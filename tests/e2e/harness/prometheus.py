"""A real Prometheus server (Debian's package, scripts/install_prometheus.sh)
on loopback scraping Envoys' /stats/prometheus: its HTTP API, promtool, and
waiting until Prometheus holds the values the Envoys report."""

from __future__ import annotations

import http.client
import json
import os
import re
import shutil
import subprocess
import urllib.parse
from pathlib import Path
from typing import Callable, Iterable, Optional, Union

from .envoy import Envoy
from .paths import REPO_ROOT
from .ports import LOOPBACK, free_port
from .process import ManagedProcess
from .waiting import wait_until


def prometheus_bin() -> str:
    """PROMETHEUS_BIN, else `prometheus` on PATH, else /usr/bin/prometheus."""
    return os.environ.get("PROMETHEUS_BIN") or shutil.which("prometheus") or "/usr/bin/prometheus"


def promtool_bin() -> str:
    """PROMTOOL_BIN, else `promtool` on PATH, else /usr/bin/promtool."""
    return os.environ.get("PROMTOOL_BIN") or shutil.which("promtool") or "/usr/bin/promtool"


def promtool(*args: str, cwd: Union[str, Path, None] = None, timeout: float = 60.0) -> tuple:
    """``promtool args...``: (exit code, stdout+stderr)."""
    proc = subprocess.run([promtool_bin(), *args], cwd=str(cwd or REPO_ROOT),
                          stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, timeout=timeout)
    return proc.returncode, proc.stdout.decode(errors="replace")


class PrometheusError(RuntimeError):
    """A Prometheus API call that did not answer ``status: success``."""

    def __init__(self, message: str, answer: Optional[dict] = None):
        super().__init__(message)
        self.answer = answer or {}


def envoy_target(envoy: Union["Envoy", tuple, str]) -> str:
    """``host:port`` of an Envoy's admin listener (where /stats/prometheus is)."""
    if isinstance(envoy, Envoy):
        return f"{LOOPBACK}:{envoy.admin_port}"
    if isinstance(envoy, tuple):
        return f"{envoy[0]}:{envoy[1]}"
    return envoy


class Prometheus(ManagedProcess):
    """One Prometheus server on loopback, scraping Envoy admin endpoints.

    ``targets``: Envoys (or ``host:port`` strings) scraped at ``metrics_path``
    (``/stats/prometheus``) every ``scrape_interval`` in job ``job``;
    ``rule_files``: recording/alerting rule files, evaluated every
    ``evaluation_interval``; ``scrape_configs`` replaces the generated job
    entirely. The configuration is written as JSON (which is YAML) with a
    fresh TSDB under ``workdir``; the server listens on a free 127.0.0.1 port.
    """

    poll_interval = 0.1
    program = "prometheus"
    missing_hint = "(scripts/install_prometheus.sh, or set PROMETHEUS_BIN)"

    def __init__(self, targets: Iterable = (), *, metrics_path: str = "/stats/prometheus",
                 job: str = "envoy", scrape_interval: str = "1s",
                 evaluation_interval: str = "1s", rule_files: Iterable = (),
                 scrape_configs: Optional[list] = None,
                 workdir: Union[str, Path, None] = None, name: str = "prometheus",
                 prometheus_path: Optional[str] = None, port: Optional[int] = None):
        super().__init__(prometheus_path or prometheus_bin(), name, "prometheus.log", workdir)
        self.port = port or free_port()
        self.config_path = self.workdir / "prometheus.yml"
        if scrape_configs is None:
            scrape_configs = [{
                "job_name": job,
                "metrics_path": metrics_path,
                "scrape_interval": scrape_interval,
                "scrape_timeout": scrape_interval,
                "static_configs": [{"targets": [envoy_target(t) for t in targets]}],
            }]
        self.config = {
            "global": {"scrape_interval": scrape_interval, "scrape_timeout": scrape_interval,
                       "evaluation_interval": evaluation_interval},
            "rule_files": [str(Path(p).resolve()) for p in rule_files],
            "scrape_configs": scrape_configs,
        }
        self.config_path.write_text(json.dumps(self.config, indent=2))

    def command(self) -> list:
        return [self.binary,
                f"--config.file={self.config_path}",
                f"--storage.tsdb.path={self.workdir / 'data'}",
                f"--web.listen-address={LOOPBACK}:{self.port}",
                "--log.level=info"]

    def is_ready(self) -> bool:
        status, _ = self._get("/-/ready", timeout=1.0)
        return status == 200

    def __exit__(self, *exc):
        self.cleanup()  # the TSDB too, not only the process

    @property
    def url(self) -> str:
        return f"http://{LOOPBACK}:{self.port}"

    # -- HTTP API ----------------------------------------------------------
    def _get(self, path: str, params=None, timeout: float = 5.0) -> tuple:
        if params:
            path += "?" + urllib.parse.urlencode(params, doseq=True)
        conn = http.client.HTTPConnection(LOOPBACK, self.port, timeout=timeout)
        try:
            conn.request("GET", path)
            resp = conn.getresponse()
            return resp.status, resp.read()
        finally:
            conn.close()

    def api_raw(self, path: str, params=None) -> dict:
        """The decoded JSON answer of ``/api/v1/<path>`` whatever its status."""
        _, body = self._get("/api/v1/" + path.lstrip("/"), params)
        return json.loads(body)

    def api(self, path: str, params=None):
        """``data`` of a successful ``/api/v1/<path>``; PrometheusError otherwise."""
        answer = self.api_raw(path, params)
        if answer.get("status") != "success":
            raise PrometheusError(f"{path} {params}: {answer.get('errorType')}: "
                                  f"{answer.get('error')}", answer)
        return answer["data"]

    def query(self, expr: str) -> list:
        """Instant query: the ``result`` list ({metric: {...}, value: [t, "v"]})."""
        data = self.api("query", {"query": expr})
        if data["resultType"] == "scalar":
            return [{"metric": {}, "value": data["result"]}]
        return data["result"]

    def vector(self, expr: str, *labels: str) -> dict:
        """Instant query as {label values tuple (or the one value): float}.

        ``labels`` name the labels forming the key (in that order); without
        them the key is the frozenset of all label pairs.
        """
        out = {}
        for sample in self.query(expr):
            metric = sample["metric"]
            if labels:
                key = tuple(metric.get(n, "") for n in labels)
                key = key[0] if len(key) == 1 else key
            else:
                key = frozenset(metric.items())
            out[key] = float(sample["value"][1])
        return out

    def scalar(self, expr: str) -> Optional[float]:
        """The value of a query returning one sample (None when it returns nothing)."""
        result = self.query(expr)
        if not result:
            return None
        if len(result) != 1:
            raise PrometheusError(f"{expr}: {len(result)} samples, expected one")
        return float(result[0]["value"][1])

    def targets(self) -> list:
        return self.api("targets", {"state": "active"})["activeTargets"]

    def wait_targets_up(self, count: int, timeout: float = 15.0) -> list:
        """Waits until ``count`` active targets were scraped successfully."""
        box = {}

        def up():
            box["t"] = self.targets()
            return len([t for t in box["t"] if t.get("health") == "up"]) >= count

        def what():
            seen = [(t.get("scrapeUrl"), t.get("health"), t.get("lastError"))
                    for t in box.get("t", [])]
            return f"{count} targets up: {seen}"

        wait_until(up, timeout, interval=0.2, what=what)
        return box["t"]

    def wait_query(self, expr: str, predicate: Callable[[dict], bool], timeout: float = 15.0,
                   labels: Iterable[str] = (), what: Optional[str] = None) -> dict:
        """Polls ``vector(expr, *labels)`` until ``predicate`` holds; returns it."""
        box = {}

        def check():
            box["v"] = self.vector(expr, *labels)
            return predicate(box["v"])

        wait_until(check, timeout, interval=0.25,
                   what=lambda: f"{what or expr} (last: {box.get('v')})")
        return box["v"]

    def rules(self) -> list:
        """Rule groups as loaded (``/api/v1/rules``)."""
        return self.api("rules")["groups"]

    def alerts(self) -> list:
        return self.api("alerts")["alerts"]


def prometheus_series(prom: "Prometheus", prefix: str = "darklaunch_") -> dict:
    """Prometheus's latest samples of every ``prefix``* series, by scrape target:
    {instance: {(name, frozenset(labels without instance/job)): float}}."""
    out: dict = {}
    for sample in prom.query('{__name__=~"' + re.escape(prefix) + '.+"}'):
        metric = dict(sample["metric"])
        name = metric.pop("__name__")
        instance = metric.pop("instance", "")
        metric.pop("job", None)
        out.setdefault(instance, {})[(name, frozenset(metric.items()))] = \
            float(sample["value"][1])
    return out


def _same_series(a: dict, b: dict) -> bool:
    if a.keys() != b.keys():
        return False
    for key, va in a.items():
        vb = b[key]
        if not (va == vb or abs(va - vb) <= 1e-9 * max(abs(va), abs(vb))):
            return False
    return True


def wait_prometheus_has(prom: "Prometheus", truth: dict, timeout: float = 15.0,
                        prefix: str = "darklaunch_") -> dict:
    """Waits until Prometheus's latest samples of ``prefix``* equal ``truth``
    ({instance ``host:port``: darklaunch_series(...)}) for every target; returns
    ``prometheus_series(prom)``."""
    box: dict = {}

    def check():
        box["got"] = prometheus_series(prom, prefix)
        return all(_same_series(box["got"].get(inst, {}), series)
                   for inst, series in truth.items())

    def what():
        got = box.get("got", {})
        diffs = []
        for inst, series in truth.items():
            mine = got.get(inst, {})
            for key in sorted(set(series) | set(mine), key=str):
                if series.get(key) != mine.get(key):
                    diffs.append(f"{inst} {key[0]}{dict(key[1])}: envoy {series.get(key)} "
                                 f"prometheus {mine.get(key)}")
        return "Prometheus to hold the Envoys' last values; differences: " + "; ".join(diffs[:10])

    wait_until(check, timeout, interval=0.25, what=what)
    return box["got"]
