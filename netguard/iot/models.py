"""Door-sensor tables (being built)."""
