"""Pure decoders: (topic, payload bytes) -> :class:`DoorEvent`, or :class:`PayloadError`.

No I/O here; every codec is tested byte for byte. Reasons carried by PayloadError:
``oversized``, ``malformed``, ``unsupported_topic`` and ``topic_mismatch``
(``unknown_sensor`` is decided later, against the registry).

Each device family is one module that registers one :class:`Codec` (see
:mod:`netguard.iot.codecs.base`); importing this package registers them all.
"""

from __future__ import annotations

from netguard.iot.codecs import native, shelly, shelly_rpc, zigbee2mqtt
from netguard.iot.codecs.base import (
    FIELD_LABELS,
    Codec,
    Decoder,
    codec_names,
    decode,
    field_label,
    get_codec,
    register,
    topic_address,
    topic_matches,
)
from netguard.iot.codecs.native import decode_native, native_topic_sensor
from netguard.iot.codecs.shelly import decode_shelly
from netguard.iot.codecs.shelly_rpc import decode_shelly_rpc
from netguard.iot.codecs.zigbee2mqtt import decode_zigbee2mqtt

__all__ = [
    "FIELD_LABELS", "Codec", "Decoder", "codec_names", "decode", "decode_native",
    "decode_shelly", "decode_shelly_rpc", "decode_zigbee2mqtt", "field_label", "get_codec",
    "native", "native_topic_sensor", "register", "shelly", "shelly_rpc", "topic_address",
    "topic_matches",
    "zigbee2mqtt",
]
