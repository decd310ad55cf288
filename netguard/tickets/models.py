"""Ticket tables (being built)."""
