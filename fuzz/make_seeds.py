#!/usr/bin/env python3
"""Writes the committed seed inputs in fuzz/seeds/<target>/ (run from anywhere).

The seeds follow each target's input layout (see the doc comment at the top
of fuzz/fuzz_targets/<target>.rs). Re-run after changing a layout; the files
are small and deterministic. `brotli` (the CLI) is used when present for the
br seeds of the decode target.
"""

import gzip
import hashlib
import json
import random
import shutil
import struct
import subprocess
import zlib
from pathlib import Path

ROOT = Path(__file__).resolve().parent / "seeds"

# A configuration that sets every option (the seed spec.json).
FULL_CONFIG = {
    "flag_header": "x-dark-launch",
    "shadow_header": "x-darklaunch-shadow",
    "mismatch_log_per_minute": 60,
    "launches": [
        {
            "name": "orders-v2",
            "dark_cluster": "orders_v2",
            "dark_authority": "orders-v2.internal",
            "match": {
                "path_prefix": "/api/orders",
                "methods": ["GET", "POST"],
                "headers": [
                    {"name": "x-tenant", "exact": "acme"},
                    {"name": "x-beta", "present": True},
                ],
            },
            "sample": {"percent": 5.0, "sticky_key": ["header:x-user-id", "cookie:session"]},
            "users": {"key": "header:x-user-id", "always": ["qa-1"], "never": ["vip-7"]},
            "unsafe_methods": False,
            "timeout_ms": 1000,
            "max_body_bytes": 65536,
            "request_headers": {"remove": ["authorization"], "set": {"x-env": "dark"}},
            "limits": {"max_rps": 200, "max_in_flight": 64},
            "breaker": {"failure_ratio": 0.5, "min_calls": 20, "window_s": 10, "open_s": 30},
            "compare": {
                "status": True,
                "headers": ["content-type"],
                "body": "auto",
                "ignore": ["/meta/generated_at", "/items/*/etag"],
                "unordered_arrays": ["/items"],
                "numeric_tolerance": 0.0,
            },
            "noise": {"cluster": "orders_v1", "percent": 10.0},
        }
    ],
}


def write(target, name, data):
    d = ROOT / target
    d.mkdir(parents=True, exist_ok=True)
    if isinstance(data, str):
        data = data.encode()
    (d / name).write_bytes(data)


def launch(**extra):
    base = {"name": "a", "dark_cluster": "c", "sample": {"percent": 5}}
    base.update(extra)
    return base


def config_seeds():
    write("config", "spec.json", json.dumps(FULL_CONFIG, indent=2))
    write("config", "minimal.json", json.dumps({"launches": [launch()]}))
    variations = {
        "template": launch(match={"path_template": "/users/{id}/orders"}),
        "users-cookie": launch(users={"key": "cookie:sid", "always": ["qa"], "never": ["vip"]}),
        "query-key": launch(sample={"percent": 50.5, "sticky_key": ["query:u", "query:ü"]}),
        "compare-json": launch(compare={"body": "json", "ignore": ["", "/a~1b", "/*/x"],
                                        "unordered_arrays": ["/*"], "numeric_tolerance": 0.25}),
        "limits": launch(limits={"max_rps": 0.5, "max_in_flight": 1},
                         breaker={"failure_ratio": 1, "min_calls": 1, "window_s": 3600, "open_s": 86400}),
        "headers": launch(request_headers={"remove": ["TE", "cookie"], "set": {"X-Env": "dark", "cookie": "a=1"}},
                          dark_authority="v2:8080"),
        "bad-percent": launch(sample={"percent": 101}),
        "bad-pointer": launch(compare={"ignore": ["a/b", "/~2"]}),
        "bad-template": launch(match={"path_template": "/u/{id}/{id}"}),
        "unknown-field": launch(bogus=1),
    }
    for name, l in variations.items():
        write("config", f"{name}.json", json.dumps({"launches": [l]}))
    many = {"flag_header": "X-Flag", "shadow_header": "x-s",
            "launches": [launch(name=f"l{i}") for i in range(3)] + [launch(name="l1")]}
    write("config", "duplicate.json", json.dumps(many))
    write("config", "empty.json", "{}")
    write("config", "not-json.txt", "not json")


def compare_seed(name, a, b, rules="", ha="", hb="", flags=1, tol=0, sa=200, sb=200):
    def raw(x):
        return x if isinstance(x, bytes) else x.encode()

    head = bytes([flags, tol]) + struct.pack(">HH", sa, sb)
    data = head + b"\0".join([raw(rules), raw(ha), raw(hb), raw(a), raw(b)])
    write("compare", name, data)


def compare_seeds():
    j = "content-type:application/json\n"
    items_a = json.dumps({"items": [{"id": 1, "etag": "x"}, {"id": 2, "etag": "y"}],
                          "meta": {"generated_at": 1}})
    items_b = json.dumps({"meta": {"generated_at": 2}, "items": [{"id": 2, "etag": "q"}, {"id": 1}]})
    spec_rules = "i/meta/generated_at\ni/items/*/etag\nu/items\nhcontent-type\n"
    compare_seed("spec-items", items_a, items_b, spec_rules, j, j)
    compare_seed("key-order", '{"a":1,"b":[1,2]}', '{ "b" : [1,2.0], "a" : 1.0 }', "", j, j)
    compare_seed("numbers", "[1, 1.0, -0, 1e2, 18446744073709551615, -9223372036854775808, 0.1]",
                 "[1.0, 1, 0, 100, 18446744073709551614, -9223372036854775807, 0.1000001]", "", j, j, tol=1)
    compare_seed("paths-escaped", '{"z":1,"a/b":1,"m~":{"x":1},"":{"":2}}',
                 '{"z":2,"a/b":2,"m~":{"x":2},"":{"":3}}', "i/~1\n", j, j)
    compare_seed("unordered-dupes", '{"tags":["a","a","b"],"x":[[1,2],[3,4]]}',
                 '{"tags":["a","b","a"],"x":[[4,3],[2,1]]}', "u/tags\nu/x\nu/x/*\n", j, j)
    compare_seed("unordered-root", "[3,1,2,{\"k\":[1]}]", "[{\"k\":[1]},1,2,3]", "u\n", j, j)
    compare_seed("ignore-root", '{"a":1}', "[2]", "i\n")
    compare_seed("invalid-json", "{oops", '{"a":1}', "", j, j)
    compare_seed("bytes", "abc", "abd", "", "content-type:text/plain\n", "content-type:text/plain\n")
    compare_seed("problem-json", '{"a":1}', '{"a":1.0}', "",
                 "content-type:application/problem+json; charset=utf-8\n", "Content-Type: Application/JSON \n")
    compare_seed("headers-multi", "", "", "hset-cookie\nhx-a\n",
                 "set-cookie:a=1\nx-a: v\nset-cookie:b=2\n", "set-cookie:a=1\nset-cookie:b=2 \nx-a:v\n",
                 sa=200, sb=503)
    compare_seed("array-length", '{"l":[1,2,3],"m":[0]}', '{"l":[1,9],"m":[0,0,0]}', "i/m/1\ni/m/2\n", j, j)
    compare_seed("null-missing", '{"a":null,"t":true}', '{"b":null,"t":"true"}', "", j, j)
    deep_a = "[" * 120 + "1" + "]" * 120
    deep_b = "[" * 120 + "2" + "]" * 120
    compare_seed("deep", deep_a, deep_b, "", j, j)
    many_a = json.dumps({f"k{i:02}": i for i in range(30)})
    many_b = json.dumps({f"k{i:02}": i + 1 for i in range(30)})
    compare_seed("many-diffs", many_a, many_b, "", j, j)
    body = b'{"items":[{"id":1,"price":10},{"id":2,"price":20}],"total":30}'
    other = b'{"total":30,"items":[{"id":1,"price":10},{"id":2,"price":21}]}'
    compare_seed("gzip-vs-plain", gzip.compress(body, mtime=0), other, "",
                 j + "content-encoding:gzip\n", j)
    compare_seed("deflate-vs-identity", zlib.compress(other), body, "",
                 j + "content-encoding:deflate\n", j + "content-encoding:identity\n")
    compare_seed("gzip-too-large", gzip.compress(body * 20, mtime=0), body, "",
                 j + "content-encoding:gzip\n", j, flags=1 | (4 << 1))
    compare_seed("unknown-coding", body, other, "", j + "content-encoding:zstd\n", j)
    if shutil.which("brotli"):
        br = subprocess.run(["brotli", "-c", "-q", "5"], input=body, capture_output=True, check=True).stdout
        compare_seed("br-list", br, gzip.compress(other, mtime=0), "",
                     j + "content-encoding:br\n", j + "content-encoding: identity, gzip\n")


def pb_varint(v):
    out = bytearray()
    while v >= 0x80:
        out.append(v & 0x7F | 0x80)
        v >>= 7
    out.append(v)
    return bytes(out)


def pb(n, value):
    """A protobuf field: an int is a varint, bytes length-delimited."""
    if isinstance(value, int):
        return pb_varint(n << 3) + pb_varint(value)
    return pb_varint(n << 3 | 2) + pb_varint(len(value)) + value


def grpc_frame(message, flag=0):
    return bytes([flag]) + struct.pack(">I", len(message)) + message


def protobuf_seed(name, a, b, flags=0, sel=0):
    write("protobuf", name, bytes([flags, sel]) + struct.pack(">H", len(a)) + a + b)


def protobuf_seeds():
    # The fixture message encoded by protoc (src/protobuf/testdata).
    reply = (ROOT.parent.parent / "src/protobuf/testdata/reply.bin").read_bytes()
    one = 1 | 1 << 2  # both sides: one message, framed by the target
    protobuf_seed("reply-schema", reply, reply, flags=one | 4 << 4)
    protobuf_seed("reply-schemaless", reply, reply[::-1], flags=one)
    item = pb(1, b"pen") + pb(2, 3) + pb(3, b"a") + pb(3, b"b")
    protobuf_seed("item-reordered", item, pb(3, b"a") + pb(2, 3) + pb(3, b"b") + pb(1, b"pen"),
                  flags=one | 5 << 4)
    packed = pb(5, pb_varint(1) + pb_varint(300)) + pb(1, 9)
    unpacked = pb(1, 9) + pb(5, 1) + pb(5, 300)
    protobuf_seed("packed-unpacked", packed, unpacked, flags=one)
    def entry(k, v):
        return pb(7, pb(1, k) + pb(2, v))

    protobuf_seed("map-order", entry(b"a", 1) + entry(b"b", 2), entry(b"b", 2) + entry(b"a", 1), flags=one)
    nested = pb(4, pb(1, pb(1, pb(2, 0) + pb(3, b"x")))) + pb(4, b"")
    protobuf_seed("nested-zero", nested, pb(4, pb(1, pb(1, pb(3, b"x")))), flags=one)
    stream = grpc_frame(item) + grpc_frame(gzip.compress(item, mtime=0), 1) + grpc_frame(b"")
    protobuf_seed("stream-gzip", stream, grpc_frame(item), flags=0, sel=1)
    protobuf_seed("stream-split", item + b"\xff" + item, item, flags=3 | 1 << 2)
    protobuf_seed("not-protobuf", b"\x0b\x0c", b"hello", flags=one)


def request_seed(name, cfg, rnd, text):
    write("request", name, bytes([cfg]) + struct.pack(">I", rnd) + text.encode("latin-1"))


def request_seeds():
    request_seed("spec-get", 0, 0, "GET /api/orders/7?x=1\n:authority:api:8080\nx-tenant:acme\nx-beta:1\n"
                 "x-user-id:qa-1\ncookie:a=b; session=abc\nx-request-id:r1\n")
    request_seed("spec-never", 0, 7, "GET /api/orders\nx-tenant:acme\nx-beta:\nx-user-id: vip-7 \n"
                 "x-dark-launch: ON\n")
    request_seed("spec-loop", 0, 7, "GET /api/orders\nx-tenant:acme\nx-beta:\nx-darklaunch-shadow:orders-v2\n")
    request_seed("spec-post-body", 0, 0, "POST /api/orders\nx-tenant:acme\nx-beta:1\ncontent-length: 70000\n"
                 "x-dark-launch:orders-v2\nconnection:keep-alive\nauthorization:secret\n")
    request_seed("query-keys", 1, 0x80000000, "GET /users/42/orders/9?u=a%20b&user=%C3%BC&a+b=1&%zz=2&x\n"
                 "cookie: session=\"quoted\" ; sid=1\ncookie:=;;session=2\n")
    request_seed("query-odd", 1, 1, "GET /users/%2F/orders/x?user=qa&user=vip&u=%\n:authority:[::1]:80\n")
    request_seed("cookie-user", 2, 0, "POST /pay?x\nx-tenant:acme\ncookie:sid=qa\ncookie: sid=vip\n"
                 "content-length:10\nx-keep:old\nte:trailers\n")
    request_seed("non-utf8", 2, 0, "PUT /pay\nx-tenant:acme\ncookie:sid=\xff\xfe; a=\xc3\n"
                 "x-bin:\xff\n:authority:\xffhost:1\n")
    request_seed("multi-launch", 3, 123456, "GET /x?x=1\nx-flag:b-2\nx-shadowed:\nx-keep:1\n"
                 "transfer-encoding:chunked\n:authority:api\n")
    request_seed("multi-off", 3, 0xffffffff, "DELETE /\nx-flag:  off\n")


def pseudo(seed, n):
    r = random.Random(seed)
    return bytes(r.randrange(256) for _ in range(n))


def decode_seeds():
    text = b'{"items":[{"id":1,"price":10},{"id":2,"price":20}],"total":30}'
    write("decode", "gzip-raw", bytes([4, 0, 6]) + b"gzip\n" + gzip.compress(text, mtime=0))
    write("decode", "xgzip-multi", bytes([4, 0, 6]) + b"X-GZIP\n" + gzip.compress(text[:20], mtime=0)
          + gzip.compress(text[20:], mtime=0))
    write("decode", "deflate-zlib", bytes([3, 1, 6]) + b"deflate\n" + zlib.compress(text))
    raw = zlib.compressobj(9, zlib.DEFLATED, -15)
    write("decode", "deflate-raw", bytes([3, 0, 6]) + b"deflate\n" + raw.compress(text) + raw.flush())
    write("decode", "identity-list", bytes([2, 0, 0]) + b"identity, ,IDENTITY\n" + text)
    write("decode", "unsupported", bytes([4, 0, 0]) + b"gzip, zstd\n" + text)
    write("decode", "bomb-gzip", bytes([4, 0, 0]) + b"gzip\n" + gzip.compress(b"\0" * 200_000, mtime=0))
    if shutil.which("brotli"):
        br = subprocess.run(["brotli", "-c", "-q", "9"], input=text, capture_output=True, check=True).stdout
        write("decode", "br", bytes([4, 0, 0]) + b"br\n" + br)
        bomb = subprocess.run(["brotli", "-c", "-q", "9"], input=b"\0" * 300_000,
                              capture_output=True, check=True).stdout
        write("decode", "bomb-br", bytes([4, 0, 0]) + b"br\n" + bomb)
        write("decode", "stacked", bytes([4, 0, 0]) + b"br, gzip\n" + gzip.compress(br, mtime=0))
    for mode in range(2, 6):
        write("decode", f"round-trip-{mode}", bytes([4, mode, 6]) + text)


def arbitrary_seeds(target, count, size):
    for i in range(count):
        seed = int(hashlib.sha256(f"{target}{i}".encode()).hexdigest()[:8], 16)
        write(target, f"random-{i}", pseudo(seed, size * (i + 1)))


def main():
    if ROOT.exists():
        shutil.rmtree(ROOT)
    config_seeds()
    compare_seeds()
    request_seeds()
    decode_seeds()
    protobuf_seeds()
    arbitrary_seeds("outcome", 4, 64)
    arbitrary_seeds("limits", 4, 48)
    arbitrary_seeds("hostdata", 4, 64)
    arbitrary_seeds("noise", 4, 64)
    for d in sorted(ROOT.iterdir()):
        print(f"{d.name}: {len(list(d.iterdir()))} seeds")


if __name__ == "__main__":
    main()
