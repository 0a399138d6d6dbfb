"""The sticky sampling model (SPEC §3), to predict the filter's decisions."""

from __future__ import annotations


def murmur3_32(data: bytes, seed: int = 0) -> int:
    """MurmurHash3 x86_32."""
    m = 0xFFFFFFFF
    c1, c2 = 0xCC9E2D51, 0x1B873593

    def rotl(x, r):
        return ((x << r) | (x >> (32 - r))) & m

    h = seed & m
    nblocks = len(data) // 4
    for i in range(nblocks):
        k = int.from_bytes(data[4 * i: 4 * i + 4], "little")
        k = rotl((k * c1) & m, 15) * c2 & m
        h = (rotl(h ^ k, 13) * 5 + 0xE6546B64) & m
    tail = data[4 * nblocks:]
    k = 0
    for i in reversed(range(len(tail))):
        k = (k << 8) | tail[i]
    if tail:
        h ^= rotl((k * c1) & m, 15) * c2 & m
    h ^= len(data)
    h ^= h >> 16
    h = (h * 0x85EBCA6B) & m
    h ^= h >> 13
    h = (h * 0xC2B2AE35) & m
    return h ^ (h >> 16)


def sticky_sampled(launch: str, key_value: str, percent: float) -> bool:
    """The SPEC §3 decision for a request whose sticky key is ``key_value``."""
    if percent >= 100:
        return True
    if percent <= 0:
        return False
    return murmur3_32((launch + key_value).encode()) < percent / 100 * 4294967296.0
