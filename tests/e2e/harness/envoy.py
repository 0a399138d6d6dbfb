"""One Envoy process on loopback: started from a bootstrap, ready once the
admin ``/ready`` says LIVE; its admin endpoints, stats, histograms and log,
the listener swapped through filesystem LDS, and ``envoy --mode validate``."""

from __future__ import annotations

import http.client
import json
import os
import re
import shutil
import signal
import subprocess
import tempfile
import time
import urllib.parse
from pathlib import Path
from typing import Callable, Iterable, Optional, Union

from .client import Client, Response, http_request
from .envoy_config import bootstrap, listener, write_lds
from .paths import REPO_ROOT
from .ports import LOOPBACK, free_port
from .process import ManagedProcess, ProcessError, _signal_group
from .stats import parse_mismatch_lines, parse_sample_lines, sum_prefix
from .waiting import wait_until

DEFAULT_ENVOY = REPO_ROOT / ".venv" / "bin" / "envoy"


def envoy_bin() -> str:
    """ENVOY_BIN, else .venv/bin/envoy in the repo, else `envoy` on PATH."""
    env = os.environ.get("ENVOY_BIN")
    if env:
        return env
    if DEFAULT_ENVOY.exists():
        return str(DEFAULT_ENVOY)
    found = shutil.which("envoy")
    return found or str(DEFAULT_ENVOY)


class EnvoyError(ProcessError):
    """Envoy exited (or never became LIVE); ``exit_code`` and ``log`` tell why."""


def _quantile_key(q: float) -> str:
    return "p" + (str(int(q)) if float(q).is_integer() else str(q))


class Envoy(ManagedProcess):
    """One Envoy process on loopback.

    ``config`` is a bootstrap dict (see ``bootstrap``) or a path to a config
    file; ``admin_port`` / ``listener_port`` must match it. ``start()`` waits
    until the admin ``/ready`` says LIVE and raises EnvoyError if Envoy exits
    first.
    """

    error = EnvoyError
    program = "Envoy binary"
    missing_hint = "(set ENVOY_BIN)"

    def __init__(self, config: Union[dict, str, Path], admin_port: int, listener_port: int, *,
                 envoy_path: Optional[str] = None, concurrency: int = 2,
                 log_level: str = "info", component_log_level: Optional[str] = "wasm:debug",
                 cwd: Union[str, Path, None] = None, extra_args: Iterable[str] = (),
                 workdir: Union[str, Path, None] = None, name: str = "envoy"):
        # Envoy logs to stderr, which goes straight to envoy.log: unlike
        # --log-path (flushed every 10 s), lines are readable at once.
        super().__init__(envoy_path or envoy_bin(), name, "envoy.log", workdir,
                         cwd or REPO_ROOT)
        self.admin_port = admin_port
        self.listener_port = listener_port
        self.concurrency = concurrency
        self.log_level = log_level
        self.component_log_level = component_log_level
        self.extra_args = list(extra_args)
        if isinstance(config, dict):
            self.config = config
            self.config_path = self.workdir / "envoy.json"
            self.config_path.write_text(json.dumps(config, indent=2))
        else:
            self.config = None
            self.config_path = Path(config).resolve()
        # Filesystem LDS (see ``enable_lds``): the file Envoy watches, the
        # ``listener(...)`` keyword arguments of the current listener and
        # the version of the last file written.
        self.lds_path: Optional[Path] = None
        self.listener_kwargs: dict = {}
        self.lds_version = 0

    @classmethod
    def launch(cls, *, concurrency: int = 2, log_level: str = "info",
               component_log_level: Optional[str] = "wasm:debug",
               extra_args: Iterable[str] = (), name: str = "envoy",
               start_timeout: float = 30.0, **bootstrap_kwargs) -> "Envoy":
        """Free ports + ``bootstrap(**bootstrap_kwargs)`` + ``start()``."""
        admin_port, listener_port = free_port(), free_port()
        cfg = bootstrap(admin_port, listener_port, **bootstrap_kwargs)
        env = cls(cfg, admin_port, listener_port, concurrency=concurrency, log_level=log_level,
                  component_log_level=component_log_level, extra_args=extra_args, name=name)
        env.start(timeout=start_timeout)
        return env

    def command(self) -> list:
        cmd = [self.binary, "-c", str(self.config_path),
               "--concurrency", str(self.concurrency),
               "--log-level", self.log_level,
               "--disable-hot-restart"]
        if self.component_log_level:
            cmd += ["--component-log-level", self.component_log_level]
        return cmd + self.extra_args

    def is_ready(self) -> bool:
        status, body = self.admin_get("/ready", timeout=1.0)
        return status == 200 and body.strip() == b"LIVE"

    # -- filesystem LDS ----------------------------------------------------
    @staticmethod
    def lds_file(workdir: Union[str, Path]) -> Path:
        """Where a harness Envoy in ``workdir`` keeps its LDS file (its own directory)."""
        d = Path(workdir) / "lds"
        d.mkdir(parents=True, exist_ok=True)
        return d / "listeners.json"

    def enable_lds(self, lds_path: Union[str, Path], **listener_kwargs) -> None:
        """Before start(): the bootstrap reads the listener from ``lds_path``
        (``bootstrap(lds_path=...)``); writes the first listener there, built by
        ``listener(self.listener_port, **listener_kwargs)``."""
        self.lds_path = Path(lds_path)
        self.set_listener(**listener_kwargs)

    def set_listener(self, **listener_kwargs) -> int:
        """Rewrites the LDS file (atomically) with ``listener(self.listener_port,
        **listener_kwargs)``; returns the new version. Envoy validates the new
        listener and drains/replaces the old one, or rejects it
        (``listener_manager.lds.update_rejected``) and keeps the old one."""
        if self.lds_path is None:
            raise RuntimeError("this Envoy has no filesystem LDS (enable_lds)")
        self.listener_kwargs = dict(listener_kwargs)
        self.lds_version += 1
        write_lds(self.lds_path, [listener(self.listener_port, **listener_kwargs)],
                  version=str(self.lds_version))
        return self.lds_version

    def set_plugin_config(self, plugin_config: Union[dict, str]) -> int:
        """The current LDS listener with another darklaunch ``plugin_config``."""
        return self.set_listener(**dict(self.listener_kwargs, plugin_config=plugin_config))

    def lds_counters(self) -> dict:
        """``listener_manager.lds.*`` counters keyed by short name (update_success, ...)."""
        prefix = "listener_manager.lds."
        return {k[len(prefix):]: v for k, v in self.stats(prefix).items()}

    # -- addresses ---------------------------------------------------------
    def url(self, path: str = "/") -> str:
        return f"http://{LOOPBACK}:{self.listener_port}{path}"

    def admin_url(self, path: str = "/") -> str:
        return f"http://{LOOPBACK}:{self.admin_port}{path}"

    def client(self, timeout: float = 10.0) -> Client:
        return Client(LOOPBACK, self.listener_port, timeout)

    def request(self, path: str = "/", method: str = "GET", headers=None, body=None,
                timeout: float = 10.0) -> Response:
        return http_request(self.url(path), method, headers, body, timeout)

    def admin_get(self, path: str, timeout: float = 5.0) -> tuple:
        """(status, body) of an admin GET."""
        return self._admin("GET", path, timeout)

    def admin_post(self, path: str, timeout: float = 5.0) -> tuple:
        """(status, body) of an admin POST (e.g. /reset_counters, /logging?wasm=debug)."""
        return self._admin("POST", path, timeout)

    def _admin(self, method: str, path: str, timeout: float) -> tuple:
        conn = http.client.HTTPConnection(LOOPBACK, self.admin_port, timeout=timeout)
        try:
            conn.request(method, path)
            resp = conn.getresponse()
            return resp.status, resp.read()
        finally:
            conn.close()

    # -- stats -------------------------------------------------------------
    def _stats_json(self, prefix: str) -> dict:
        query = "format=json"
        if prefix:
            query += "&filter=" + urllib.parse.quote("^" + re.escape(prefix))
        status, body = self.admin_get("/stats?" + query)
        if status != 200:
            raise RuntimeError(f"/stats answered {status}: {body[:200]!r}")
        return json.loads(body)

    def stats(self, prefix: str = "wasmcustom.") -> dict:
        """Counters and gauges whose name starts with ``prefix``: {name: int}."""
        out = {}
        for entry in self._stats_json(prefix).get("stats", []):
            if "name" in entry and "value" in entry and entry["name"].startswith(prefix):
                out[entry["name"]] = int(entry["value"])
        return out

    def histograms(self, prefix: str = "wasmcustom.") -> dict:
        """Cumulative histogram quantiles: {name: {"p50": ms, "p95": ms, ...}}.

        Envoy merges histograms at each stats flush (every second with the
        harness's bootstrap), so fresh samples show up after a flush; a
        histogram without samples has None values.
        """
        out = {}
        for entry in self._stats_json(prefix).get("stats", []):
            hist = entry.get("histograms")
            if not hist:
                continue
            qs = hist.get("supported_quantiles", [])
            for h in hist.get("computed_quantiles", []):
                if not h["name"].startswith(prefix):
                    continue
                out[h["name"]] = {
                    _quantile_key(q): v.get("cumulative") for q, v in zip(qs, h.get("values", []))
                }
        return out

    def stat(self, name: str, default: int = 0) -> int:
        """One wasm stat; ``darklaunch.L.x`` and ``wasmcustom.darklaunch.L.x`` both work."""
        full = name if name.startswith("wasmcustom.") else "wasmcustom." + name
        return self.stats(full).get(full, default)

    def launch_stats(self, launch: str) -> dict:
        """The counters and gauges of one launch keyed by short name (``skipped.loop``)."""
        prefix = f"wasmcustom.darklaunch.{launch}."
        return {k[len(prefix):]: v for k, v in self.stats(prefix).items()}

    def wait_stat(self, name: str, value: int, timeout: float = 10.0) -> int:
        """Waits until ``stat(name) == value``."""
        wait_until(lambda: self.stat(name) == value, timeout,
                   what=lambda: f"{name} == {value} (now {self.stat(name)})")
        return value

    def wait_stats(self, predicate: Callable[[dict], bool], timeout: float = 10.0,
                   what: str = "stats predicate") -> dict:
        """Waits until ``predicate(stats())`` holds; returns those stats."""
        box = {}

        def check():
            box["stats"] = self.stats()
            return predicate(box["stats"])

        wait_until(check, timeout, what=lambda: f"{what}; stats: {box.get('stats')}")
        return box["stats"]

    def wait_until(self, predicate: Callable[[], object], timeout: float = 10.0,
                   what: str = "condition"):
        return wait_until(predicate, timeout, what=what)

    def wait_settled(self, launch: str, timeout: float = 15.0, quiet: float = 0.3) -> dict:
        """Waits until the launch's traffic has settled; returns its launch_stats().

        Settled: both stats invariants hold (``matched == shadowed + Σ
        skipped``: every decision is counted; ``shadowed == compared + Σ
        compare_skipped``: every shadow call is accounted for), no shadow call
        is in flight, and nothing changed for ``quiet`` seconds.
        """
        deadline = time.monotonic() + timeout
        last, since = None, time.monotonic()
        while True:
            s = self.launch_stats(launch)
            done = (s.get("matched", 0) == s.get("shadowed", 0) + sum_prefix(s, "skipped.")
                    and s.get("shadowed", 0)
                    == s.get("compared", 0) + sum_prefix(s, "compare_skipped.")
                    and s.get("in_flight", 0) == 0)
            if s != last:
                last, since = s, time.monotonic()
            elif done and time.monotonic() - since >= quiet:
                return s
            if time.monotonic() >= deadline:
                raise TimeoutError(f"launch {launch} not settled after {timeout}s: {s}")
            time.sleep(0.05)

    def prometheus(self) -> str:
        status, body = self.admin_get("/stats/prometheus")
        if status != 200:
            raise RuntimeError(f"/stats/prometheus answered {status}")
        return body.decode()

    def config_dump(self) -> dict:
        status, body = self.admin_get("/config_dump")
        return json.loads(body)

    # -- log ---------------------------------------------------------------
    def wait_log(self, pattern: str, timeout: float = 10.0) -> re.Match:
        """Waits until the log matches the regex ``pattern``; returns the match."""
        rx = re.compile(pattern)
        return wait_until(lambda: rx.search(self.log_text()), timeout,
                          what=f"log line matching {pattern!r}")

    def mismatch_logs(self) -> list:
        """The JSON objects of the ``darklaunch mismatch {...}`` log lines."""
        return parse_mismatch_lines(self.log_text())

    def samples(self) -> list:
        """The JSON objects of the ``darklaunch sample {...}`` log lines."""
        return parse_sample_lines(self.log_text())

    # -- validate mode -----------------------------------------------------
    @staticmethod
    def validate(config: Union[dict, str, Path], envoy_path: Optional[str] = None,
                 cwd: Union[str, Path, None] = None, timeout: float = 120.0) -> tuple:
        """``envoy --mode validate -c config``: (exit code, stdout+stderr)."""
        with tempfile.TemporaryDirectory(prefix="darklaunch-validate-") as tmp:
            if isinstance(config, dict):
                path = Path(tmp) / "envoy.json"
                path.write_text(json.dumps(config, indent=2))
            else:
                path = Path(config).resolve()
            cmd = [envoy_path or envoy_bin(), "--mode", "validate", "-c", str(path),
                   "--log-level", "info", "--disable-hot-restart"]
            proc = subprocess.Popen(cmd, cwd=str(cwd or REPO_ROOT), stdin=subprocess.DEVNULL,
                                    stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                    start_new_session=True)
            try:
                out, _ = proc.communicate(timeout=timeout)
            except subprocess.TimeoutExpired:
                _signal_group(proc, signal.SIGKILL)
                out, _ = proc.communicate()
            return proc.returncode, out.decode(errors="replace")
