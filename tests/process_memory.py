"""Test-side helper: how much of a file this process holds in memory through its mappings."""

from __future__ import annotations

from pathlib import Path


def resident_kb(path: Path) -> int:
    """Resident kB of this process's mappings of `path`, from /proc/self/smaps (Linux)."""
    target, total, inside = str(Path(path).resolve()), 0, False
    with open("/proc/self/smaps") as fh:
        for line in fh:
            fields = line.split()
            if not fields[0].endswith(":"):  # a mapping's header line: address range, perms, ..., path
                inside = len(fields) >= 6 and fields[5] == target
            elif inside and fields[0] == "Rss:":
                total += int(fields[1])
    return total
