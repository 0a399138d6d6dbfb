"""Polling until a condition holds, with a timeout that says what was awaited."""

from __future__ import annotations

import http.client
import time
from typing import Callable


def wait_until(predicate: Callable[[], object], timeout: float = 10.0,
               interval: float = 0.05, what: str = "condition"):
    """Polls ``predicate()`` until it returns something truthy; returns it.

    Raises TimeoutError naming ``what`` (a string or a callable producing one,
    evaluated at the time of failure) when ``timeout`` passes.
    """
    deadline = time.monotonic() + timeout
    last_exc = None
    while True:
        try:
            result = predicate()
            if result:
                return result
        except (OSError, http.client.HTTPException, ValueError) as exc:
            last_exc = exc
        if time.monotonic() >= deadline:
            desc = what() if callable(what) else what
            msg = f"timed out after {timeout}s waiting for {desc}"
            if last_exc is not None:
                msg += f" (last error: {last_exc!r})"
            raise TimeoutError(msg)
        time.sleep(interval)
