"""Which live member owns which target: rendezvous (highest-random-weight) hashing.

Every member scores every target with a hash of ``(member, target)``; the highest score
owns it. Each instance computes the same owner from the same member list, so there is no
central assignment; when a member joins or leaves, only the targets it wins or held move
(about 1/N of them), never a reshuffle of the rest.

The hash is BLAKE2b, not Python's ``hash()``: it must agree across processes and hosts
(``PYTHONHASHSEED`` differs per process). Pure: no I/O, no clock.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping, Sequence


def weight(member: str, target: str) -> int:
    """The score of ``member`` for ``target`` (a 64-bit integer, the same everywhere)."""
    # The NUL separator keeps ("ab", "c") and ("a", "bc") apart.
    digest = hashlib.blake2b(f"{member}\0{target}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big")


def owner(target: str, members: Iterable[str]) -> str | None:
    """The member that owns ``target``, or ``None`` when there are no members.

    Ties (astronomically rare) go to the greater member name, so the answer never
    depends on the order of ``members``.
    """
    best: tuple[int, str] | None = None
    for member in members:
        score = (weight(member, target), member)
        if best is None or score > best:
            best = score
    return None if best is None else best[1]


def assign(targets: Iterable[str], members: Iterable[str]) -> dict[str, list[str]]:
    """Every member's targets, in the order the targets were given.

    Every member appears, even one that owns nothing; with no members, nothing is
    assigned.
    """
    names = sorted(set(members))
    result: dict[str, list[str]] = {name: [] for name in names}
    if not names:
        return result
    for target in targets:
        chosen = owner(target, names)
        assert chosen is not None
        result[chosen].append(target)
    return result


def owned_by(member: str, targets: Iterable[str], members: Iterable[str]) -> list[str]:
    """The targets ``member`` owns among ``members`` (none if it is not one of them)."""
    names = set(members)
    if member not in names:
        return []
    return [t for t in targets if owner(t, names) == member]


def moved(before: Mapping[str, Sequence[str]], after: Mapping[str, Sequence[str]]
          ) -> set[str]:
    """The targets whose owner differs between two assignments (for logs and tests)."""
    def owners(assignment: Mapping[str, Sequence[str]]) -> dict[str, str]:
        return {t: m for m, ts in assignment.items() for t in ts}

    old, new = owners(before), owners(after)
    return {t for t in old.keys() | new.keys() if old.get(t) != new.get(t)}
