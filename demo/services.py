"""The demo's two versions of an "orders" JSON service.

v1 is the primary (what clients get); v2 is the dark candidate. They agree
except where v2 differs on purpose:

* ``/api/items/<id>``: price differs for ids divisible by 7 (a body mismatch);
  v2 answers 500 for ids divisible by 23 (a status mismatch);
* ``/api/slow``: v2 is 150 ms slower and says ``application/json;
  charset=utf-8`` (a content-type header mismatch);
* ``meta.generated_at`` always differs (a timestamp, ignored by the demo config);
* ``meta.request_token`` always differs too, in v1 as much as in v2 (a fresh
  random token in every JSON answer, *not* ignored by the config): the kind of
  field nobody thought to ignore. darklaunch's A/A noise cancellation learns
  it by comparing v1 with a second copy of v1, and stops counting pairs whose
  only difference it is as mismatches.

Run standalone (``python3 demo/services.py [v1_port v2_port]``) to serve them
on 127.0.0.1:8081 and :8082 until Ctrl-C, e.g. to try envoy/demo.yaml by hand.
"""

from __future__ import annotations

import datetime
import re
import secrets
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "e2e"))

from harness import Reply, Request, Upstream  # noqa: E402

ITEM = re.compile(r"^/api/items/(\d{1,9})$")
SLOW_MS = {"v1": 20, "v2": 170}
# Nondeterministic fields that the demo config does not ignore: they differ
# between any two answers, even two answers of v1 (what A/A learns as noise).
NOISE_FIELDS = ("/meta/request_token",)


def expected_difference(path: str) -> set:
    """What v2 does differently for ``path``: a subset of {"status", "headers", "body"}."""
    m = ITEM.match(path.split("?", 1)[0])
    if m:
        item = int(m.group(1))
        if item % 23 == 0:
            return {"status"}
        if item % 7 == 0:
            return {"body"}
        return set()
    if path.split("?", 1)[0] == "/api/slow":
        return {"headers"}
    return set()


def expected_fields(path: str) -> set:
    """The folded JSON pointers at which v2's body differs from v1's *on
    purpose* for ``path`` (noise fields not included): what the filter's
    ``field_mismatch`` counters must count, pair for pair."""
    m = ITEM.match(path.split("?", 1)[0])
    if not m:
        return set()
    item = int(m.group(1))
    if item % 23 == 0:
        # v2's 500 answer vs v1's item differs in every field, but a pair
        # whose statuses differ counts as a status mismatch only.
        return set()
    if item % 7 == 0:
        return {"/price"}
    return set()


def answers_differ(path: str) -> bool:
    """Whether v1's and v2's answers for ``path`` differ anywhere the demo
    config does not ignore: always under /api/, where every answer (404s
    included) is JSON with its own meta.request_token."""
    return path.split("?", 1)[0].startswith("/api/")


def _meta(version: str, extra: dict = None) -> dict:
    """The ``meta`` of every JSON answer: an ignored timestamp, ``extra``,
    and a random token that is not ignored."""
    return {"generated_at": _now(version), **(extra or {}),
            "request_token": secrets.token_hex(8)}


def _now(version: str) -> str:
    ts = datetime.datetime.now(datetime.timezone.utc)
    # Different formats too, so the ignored field differs even within a microsecond.
    return ts.isoformat() if version == "v1" else ts.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _item(item: int, version: str) -> dict:
    price = round(3 + item * 1.25, 2)
    if version == "v2" and item % 7 == 0:
        price = round(price * 1.1, 2)  # the change under test
    return {
        "id": item,
        "name": f"item-{item}",
        "price": price,
        "tags": ["demo", "orders"],
        "meta": _meta(version, {"version": 1}),
    }


def handler(version: str):
    def handle(req: Request) -> Reply:
        served = [("x-served-by", version)]
        path = req.path_only
        if path == "/health":
            return Reply.text("ok\n", headers=served)
        m = ITEM.match(path)
        if m:
            item = int(m.group(1))
            if version == "v2" and item % 23 == 0:
                return Reply.json({"error": "internal", "meta": _meta(version)}, status=500,
                                  headers=served)
            return Reply.json(_item(item, version), headers=served)
        if path == "/api/slow":
            body = {"report": "daily", "rows": 3, "meta": _meta(version)}
            reply = Reply.json(body, headers=served, delay=SLOW_MS[version] / 1000)
            if version == "v2":
                reply.headers[0] = ("content-type", "application/json; charset=utf-8")
            return reply
        return Reply.json({"error": "not found", "meta": _meta(version)}, status=404,
                          headers=served)

    return handle


def start(v1_port: int = 8081, v2_port: int = 8082) -> tuple:
    """Starts v1 and v2 on 127.0.0.1; returns the two harness.Upstream (call .stop())."""
    v1 = Upstream(handler("v1"), name="v1", port=v1_port)
    try:
        v2 = Upstream(handler("v2"), name="v2", port=v2_port)
    except BaseException:
        v1.stop()
        raise
    return v1, v2


def main(argv: list) -> int:
    ports = [int(a) for a in argv[1:3]] or [8081, 8082]
    v1, v2 = start(*ports)
    print(f"v1 (primary) on {v1.url('/')}, v2 (dark) on {v2.url('/')}; Ctrl-C to stop")
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        v1.stop()
        v2.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
