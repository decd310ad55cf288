"""What a configuration reload (SIGHUP) changes, decided without I/O.

:func:`plan_reload` compares the running settings with a freshly loaded file. The target
inventory, the logging section and the ticket settings apply live; the store, the IoT
section (MQTT broker, notifiers), the metrics endpoint, the polling engines, the daemon
timings, the acknowledgement links and the notification routes need a restart, so the plan
keeps their running values and names what was left unapplied.
"""

from __future__ import annotations

from dataclasses import dataclass

from pydantic import BaseModel

from netguard.config import Settings

# Sections whose objects are built once at startup (connections, listeners, timings).
RESTART_SECTIONS: tuple[str, ...] = ("store", "iot", "metrics", "probes", "daemon",
                                      "ack_links", "notifications", "cluster")


@dataclass(frozen=True, slots=True)
class ReloadPlan:
    """The difference between the running and the reloaded configuration.

    Attributes:
        settings: What the daemon runs with after the reload: the new live sections and
            the running values of the restart-only sections.
        added, removed, changed: Target ids new in the file, gone from it, and whose
            configuration differs (address, credentials, interval, thresholds, ...).
        logging_changed, tickets_changed: Whether those live sections differ.
        needs_restart: Dotted paths (``metrics.listen``) of changed options that are
            kept at their running values until a restart. Never values: they may be
            secrets.
    """

    settings: Settings
    added: tuple[str, ...] = ()
    removed: tuple[str, ...] = ()
    changed: tuple[str, ...] = ()
    logging_changed: bool = False
    tickets_changed: bool = False
    needs_restart: tuple[str, ...] = ()

    @property
    def targets_changed(self) -> bool:
        """Whether the target inventory differs."""
        return bool(self.added or self.removed or self.changed)

    @property
    def changes_anything(self) -> bool:
        """Whether anything applies live."""
        return self.targets_changed or self.logging_changed or self.tickets_changed


def plan_reload(running: Settings, loaded: Settings) -> ReloadPlan:
    """Compare the running settings with a newly loaded file.

    Args:
        running: What the daemon runs with now.
        loaded: The validated settings just read from the file.

    Returns:
        The plan; its ``settings`` are what to run with from now on.
    """
    old = {t.id: t for t in running.targets}
    new = {t.id: t for t in loaded.targets}
    needs_restart: list[str] = []
    for section in RESTART_SECTIONS:
        needs_restart += _changed_paths(section, getattr(running, section),
                                        getattr(loaded, section))
    effective = loaded.model_copy(
        update={section: getattr(running, section) for section in RESTART_SECTIONS})
    return ReloadPlan(
        settings=effective,
        added=tuple(tid for tid in new if tid not in old),
        removed=tuple(tid for tid in old if tid not in new),
        changed=tuple(tid for tid in new if tid in old and new[tid] != old[tid]),
        logging_changed=running.logging != loaded.logging,
        tickets_changed=running.tickets != loaded.tickets,
        needs_restart=tuple(needs_restart),
    )


def _changed_paths(path: str, old: object, new: object) -> list[str]:
    if old == new:
        return []
    if isinstance(old, BaseModel) and type(old) is type(new):
        paths: list[str] = []
        for name in type(old).model_fields:
            paths += _changed_paths(f"{path}.{name}", getattr(old, name), getattr(new, name))
        return paths or [path]
    return [path]
