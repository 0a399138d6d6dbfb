"""One managed child process (Envoy, Prometheus): started in its own process
group with its output in a log file, waited on until ready, stopped with
SIGTERM then SIGKILL, its temporary directory removed; and the registry that
stops whatever is still running when the interpreter exits."""

from __future__ import annotations

import atexit
import http.client
import os
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from pathlib import Path
from typing import Optional, Union

# Everything started and not yet stopped (processes, upstream servers): each
# has a stop(), called at interpreter exit.
_live_lock = threading.Lock()
_live: set = set()


def _register(obj) -> None:
    with _live_lock:
        _live.add(obj)


def _unregister(obj) -> None:
    with _live_lock:
        _live.discard(obj)


@atexit.register
def _stop_everything() -> None:
    with _live_lock:
        objs = list(_live)
    for obj in objs:
        try:
            obj.stop()
        except Exception:  # noqa: BLE001 - best effort at exit
            pass


def _signal_group(proc: subprocess.Popen, sig: int) -> None:
    try:
        os.killpg(proc.pid, sig)  # start_new_session: the group id is the pid
    except (ProcessLookupError, PermissionError):
        try:
            proc.send_signal(sig)
        except ProcessLookupError:
            pass


def _tail(text: str, n: int) -> str:
    return "\n".join(text.splitlines()[-n:])


class ProcessError(RuntimeError):
    """The process exited (or never became ready); ``exit_code`` and ``log`` tell why."""

    def __init__(self, message: str, exit_code: Optional[int] = None, log: str = ""):
        super().__init__(message)
        self.exit_code = exit_code
        self.log = log


class ManagedProcess:
    """One child process whose stdout and stderr go to ``log_path`` in ``workdir``.

    A subclass names its binary (``binary``), builds its ``command()``, says
    when it is ready (``is_ready()``) and may set ``error`` (the exception
    class raised when the process exits early or is not ready in time) and
    ``poll_interval``, and names the ``program`` and a ``missing_hint`` for a
    missing binary. ``workdir`` defaults to a fresh temporary directory,
    which ``cleanup()`` removes.
    """

    error = ProcessError
    poll_interval = 0.05
    program = "binary"  # for the error when the binary is missing ...
    missing_hint = ""  # ... and what to do about it

    def __init__(self, binary: str, name: str, log_name: str,
                 workdir: Union[str, Path, None] = None, cwd: Union[str, Path, None] = None):
        self.binary = binary
        self.name = name
        self._own_workdir = workdir is None
        self.workdir = Path(workdir or tempfile.mkdtemp(prefix=f"darklaunch-{name}-"))
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.cwd = str(cwd or self.workdir)
        # The output goes straight to this file, so lines are readable at once.
        self.log_path = self.workdir / log_name
        self.proc: Optional[subprocess.Popen] = None
        self._stdout = None

    def command(self) -> list:
        raise NotImplementedError

    def is_ready(self) -> bool:
        raise NotImplementedError

    def start(self, timeout: float = 30.0, wait: bool = True):
        if not Path(self.binary).exists() and not shutil.which(self.binary):
            raise self.error(f"{self.program} not found: {self.binary} {self.missing_hint}")
        self._stdout = open(self.log_path, "ab")
        self.proc = subprocess.Popen(
            self.command(), cwd=self.cwd, stdin=subprocess.DEVNULL, stdout=self._stdout,
            stderr=subprocess.STDOUT, start_new_session=True)
        _register(self)
        if wait:
            self.wait_ready(timeout)
        return self

    def wait_ready(self, timeout: float = 30.0) -> None:
        """Polls ``is_ready()``; raises ``error`` if the process exits first or
        is not ready after ``timeout`` (then it is stopped)."""
        deadline = time.monotonic() + timeout
        while True:
            code = self.proc.poll()
            if code is not None:
                self.stop()  # closes the log file, forgets the process
                log = self.log_text()
                raise self.error(f"{self.name} exited with code {code} before becoming "
                                 "ready:\n" + _tail(log, 40), code, log)
            try:
                if self.is_ready():
                    return
            except (OSError, http.client.HTTPException):
                pass
            if time.monotonic() >= deadline:
                self.stop()
                log = self.log_text()
                raise self.error(f"{self.name} not ready after {timeout}s:\n" + _tail(log, 40),
                                 None, log)
            time.sleep(self.poll_interval)

    def wait_exit(self, timeout: float = 30.0) -> Optional[int]:
        """Waits for the process to exit on its own; its code, or None if still running."""
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            return None

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self, timeout: float = 10.0) -> Optional[int]:
        """SIGTERM to the process group, SIGKILL after ``timeout``; the exit code."""
        code = None
        if self.proc is not None:
            if self.proc.poll() is None:
                _signal_group(self.proc, signal.SIGTERM)
                try:
                    self.proc.wait(timeout)
                except subprocess.TimeoutExpired:
                    _signal_group(self.proc, signal.SIGKILL)
                    self.proc.wait(timeout)
            code = self.proc.returncode
        if self._stdout is not None:
            self._stdout.close()
            self._stdout = None
        _unregister(self)
        return code

    def cleanup(self) -> None:
        """stop() and remove the work directory (if the harness created it)."""
        self.stop()
        if self._own_workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def log_text(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def __enter__(self):
        if self.proc is None:
            self.start()
        return self

    def __exit__(self, *exc):
        self.stop()
