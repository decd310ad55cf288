"""How netguard speaks to people: the language of its messages and the local time zone.

One ``display:`` section serves every place a person reads or writes a time or a
message: chat messages, recurring allowed windows ("daily 18:00-18:30" is read in
``display.timezone``), and CLI times given without an offset.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    PrivateAttr,
    ValidationInfo,
    field_validator,
    model_validator,
)

from netguard.iot.messages import MessageRenderer, TemplateError, load_templates
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
    # Operator templates, one file per message kind and language
    # (``raised.zh-CN.md``); a kind without a file keeps the built-in text. Relative to
    # the config file.
    templates_dir: Path | None = None
    _templates: dict[tuple[str, str], str] = PrivateAttr(default_factory=dict)

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        zone(value)
        return value

    @field_validator("templates_dir")
    @classmethod
    def _from_config_dir(cls, value: Path | None, info: ValidationInfo) -> Path | None:
        base = (info.context or {}).get("base_dir") if isinstance(info.context, dict) else None
        if value is None or base is None or value.is_absolute():
            return value
        return Path(base) / value

    @model_validator(mode="after")
    def _load_templates(self) -> DisplayConfig:
        # Read once, here: a broken file fails check-config and start-up, never a send.
        if self.templates_dir is not None:
            try:
                self._templates = load_templates(self.templates_dir)
            except TemplateError as exc:
                raise ValueError(f"display.templates_dir: {exc}") from None
        return self

    def renderer(self) -> MessageRenderer:
        """The message renderer for this language, zone and templates."""
        return MessageRenderer(self.language, self.timezone, dict(self._templates))


__all__ = ["DisplayConfig", "Language"]
