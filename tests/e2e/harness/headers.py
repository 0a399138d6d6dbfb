"""Header lookups shared by the upstream's requests and the client's responses."""

from __future__ import annotations

from typing import Optional


class HeaderList:
    """``header``/``header_all`` over ``self.headers``, a list of
    (lower-case name, value) in arrival order."""

    def header(self, name: str, default: Optional[str] = None) -> Optional[str]:
        name = name.lower()
        for k, v in self.headers:
            if k == name:
                return v
        return default

    def header_all(self, name: str) -> list:
        name = name.lower()
        return [v for k, v in self.headers if k == name]
