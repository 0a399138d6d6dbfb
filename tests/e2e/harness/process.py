"""Process helpers: the registry that stops whatever is still running when
the interpreter exits, signalling a process group, the tail of a log."""

from __future__ import annotations

import atexit
import os
import subprocess
import threading

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
