"""Fault tickets: idempotent opening, lifecycle, auto-resolve, root-cause grouping, audit."""
