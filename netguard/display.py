"""How netguard speaks to people: the language of its messages and the local time zone.

One ``display:`` section serves every place a person reads or writes a time or a
message: chat messages, recurring allowed windows ("daily 18:00-18:30" is read in
``display.timezone``), and CLI times given without an offset.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, field_validator

from netguard.localtime import zone

Language = Literal["zh-CN", "en"]
"""The languages messages are written in."""


class DisplayConfig(BaseModel):
    """Language and time zone of what people read (the ``display:`` section)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    language: Language = "zh-CN"
    # The district's local time (IANA name). Recurring allowed windows keep the zone they
    # were set in if this changes later.
    timezone: str = "Asia/Shanghai"

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        zone(value)
        return value


__all__ = ["DisplayConfig", "Language"]
