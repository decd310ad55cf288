"""Finding the processes a demo run started, without psutil."""

from __future__ import annotations

import os
import signal


def descendants(pid: int) -> set[int]:
    """Every live process below ``pid``, found by scanning /proc for parent ids."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", encoding="utf-8") as handle:
                stat = handle.read()
        except OSError:
            continue
        # The command name (field 2) may hold spaces; the parent id follows its ')'.
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(entry))
    found: set[int] = set()
    stack = [pid]
    while stack:
        for child in children.get(stack.pop(), []):
            if child not in found:
                found.add(child)
                stack.append(child)
    return found


def running(pid: int) -> bool:
    """True while ``pid`` exists and is not a zombie."""
    try:
        with open(f"/proc/{pid}/stat", encoding="utf-8") as handle:
            return handle.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def kill_all(pids: set[int]) -> None:
    """SIGKILL every process in ``pids`` that still runs (test clean-up)."""
    for pid in pids:
        if running(pid):
            os.kill(pid, signal.SIGKILL)
