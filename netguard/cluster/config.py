"""Configuration of scale-out (the ``cluster:`` section)."""

from __future__ import annotations

import socket

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from netguard.names import NAME_RULE, check_name, is_name


def host_name() -> str:
    """This machine's host name, the default ``instance_id``."""
    return socket.gethostname()


class ClusterConfig(BaseModel):
    """Several instances sharing one estate through PostgreSQL (docs/scale-out.md).

    Attributes:
        enabled: Join the cluster: register in the members table, poll only the targets
            this instance owns, run the single-run sweeps only while leader. Needs a
            PostgreSQL store.
        instance_id: This instance's stable name (default: the host name); two running
            instances must never share one.
        heartbeat_seconds: How often the instance renews its membership.
        lease_seconds: How long a membership lasts without a heartbeat; after it the
            others take over the instance's targets, and the instance itself, if it could
            not heartbeat for that long, stops polling (fencing). Must exceed
            ``heartbeat_seconds``; three heartbeats or more is advised.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    enabled: bool = False
    instance_id: str | None = None
    heartbeat_seconds: float = Field(default=5.0, ge=0.1, le=300)
    lease_seconds: float = Field(default=20.0, ge=0.5, le=3600)

    @field_validator("instance_id")
    @classmethod
    def _check_instance_id(cls, value: str | None) -> str | None:
        if value is not None:
            check_name(value, "instance id")
        return value

    @model_validator(mode="after")
    def _check_timing(self) -> ClusterConfig:
        if self.lease_seconds <= self.heartbeat_seconds:
            raise ValueError(
                f"cluster.lease_seconds: must be longer than cluster.heartbeat_seconds "
                f"({self.lease_seconds:g} <= {self.heartbeat_seconds:g}); three "
                f"heartbeats or more is advised")
        if self.enabled and self.instance_id is None and not is_name(host_name()):
            raise ValueError(
                f"cluster.instance_id: the host name {host_name()!r} is not a valid "
                f"instance id ({NAME_RULE}); set cluster.instance_id")
        return self

    @property
    def member_id(self) -> str:
        """The instance id in effect: ``instance_id``, else the host name."""
        return self.instance_id if self.instance_id is not None else host_name()
