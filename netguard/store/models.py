"""Imports every table module so that SQLModel.metadata is complete (for Alembic)."""

from netguard.cluster import models as cluster_models
from netguard.iot import models as iot_models
from netguard.notify import models as notify_models
from netguard.tickets import models as ticket_models

__all__ = ["cluster_models", "iot_models", "notify_models", "ticket_models"]
