"""SNMP probing: transport, vendor profiles as data, decoding, counter maths, assessment."""
