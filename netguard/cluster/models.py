"""The members table, declared for SQLModel's metadata (the migrations and the schema
test compare against it); :mod:`netguard.cluster.members` queries it."""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlmodel import Field, SQLModel


class ClusterMember(SQLModel, table=True):
    """One instance of a cluster: its registration (epoch) and last heartbeat."""

    __tablename__ = "cluster_member"

    instance_id: str = Field(max_length=64, primary_key=True)
    incarnation: int = Field(sa_column=sa.Column(sa.BigInteger(), nullable=False))
    host: str = Field(max_length=255)
    pid: int
    lease_seconds: float
    joined_at: datetime = Field(sa_column=sa.Column(sa.DateTime(timezone=True),
                                                    nullable=False))
    heartbeat_at: datetime = Field(sa_column=sa.Column(sa.DateTime(timezone=True),
                                                       nullable=False))
