"""Home-quarantine door sensors: MQTT intake, codecs, registry, rules, outbox, audit log."""
