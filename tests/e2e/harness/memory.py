"""Memory of a running process as /proc shows it, notably the wasm heap."""

from __future__ import annotations

import re
from pathlib import Path


def _vmas(pid: int) -> list:
    """[(start, end, perms, anonymous, rss_kib)] from /proc/<pid>/smaps, in address order."""
    out = []
    try:
        text = Path(f"/proc/{pid}/smaps").read_text()
    except OSError:
        return out
    header = re.compile(r"^([0-9a-f]+)-([0-9a-f]+) (\S+) \S+ \S+ \d+\s*(.*)$")
    for line in text.splitlines():
        m = header.match(line)
        if m:
            out.append([int(m.group(1), 16), int(m.group(2), 16), m.group(3),
                        not m.group(4), 0])
        elif line.startswith("Rss:") and out:
            out[-1][4] = int(line.split()[1])
    return out


def wasm_memory_kib(pid: int) -> dict:
    """The wasm linear memories of a process: {"vms", "size_kib", "rss_kib"}.

    Envoy exposes no wasm memory stat. V8 reserves each wasm linear memory
    as one huge anonymous region (4 GiB plus guard pages) and makes the part
    in use (the memory's current size, grown by ``memory.grow`` and never
    shrunk) readable and writable; in /proc/<pid>/smaps that shows as an
    ``rw-p`` mapping directly followed by a ``---p`` one of gigabytes. Their
    sizes add up to the VMs' heap sizes, their Rss to what is resident.
    """
    vmas = _vmas(pid)
    vms = size = rss = 0
    for prev, cur in zip(vmas, vmas[1:]):
        if (cur[2] == "---p" and cur[3] and cur[1] - cur[0] >= (1 << 30)
                and prev[2] == "rw-p" and prev[3] and prev[1] == cur[0]):
            vms += 1
            size += (prev[1] - prev[0]) // 1024
            rss += prev[4]
    return {"vms": vms, "size_kib": size, "rss_kib": rss}
