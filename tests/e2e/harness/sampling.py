"""The sticky sampling model, to predict the filter's decisions: a request
whose sticky key is K is shadowed by launch L at P percent when
murmur3_x86_32(L + K) < P/100 × 2^32 (flagd's ``fractional``)."""

from __future__ import annotations

import mmh3


def murmur3_32(data: bytes, seed: int = 0) -> int:
    """MurmurHash3 x86_32, unsigned."""
    return mmh3.hash(data, seed, signed=False)


def sticky_sampled(launch: str, key_value: str, percent: float) -> bool:
    """Whether a request whose sticky key is ``key_value`` is sampled in:
    murmur3_x86_32(launch + key) < percent/100 × 2^32."""
    if percent >= 100:
        return True
    if percent <= 0:
        return False
    return murmur3_32((launch + key_value).encode()) < percent / 100 * 4294967296.0
