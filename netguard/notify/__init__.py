"""Notifications of network faults: ticket routes, grouping, escalation, Alertmanager intake.

Door alerts have their own routes by community (``iot.routes``); this package routes the
network side: ticket events (opened, severity raised, child attached, SLA overdue,
reopened, resolved) and alerts posted by Prometheus' Alertmanager. Both end as rows of
the same persistent outbox (:mod:`netguard.iot.outbox`), delivered by the same notifiers.
"""
