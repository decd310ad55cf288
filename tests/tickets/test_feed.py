"""The live view's reads (``TicketService.tally`` and ``news``) on real SQLite and PostgreSQL."""

from __future__ import annotations

from netguard.tickets.domain import TicketTally
from netguard.tickets.service import TicketService
from tests.tickets.conftest import OpenFactory


async def test_tally_counts_tickets_by_phase_and_children_under_active_ones(
        service: TicketService, opened: OpenFactory) -> None:
    assert await service.tally() == TicketTally(active=0, done=0, children=0)
    root = await service.handle(opened("olt-1", "agent", "unreachable", category="pon"))
    assert root is not None
    for n in (1, 2):
        await service.handle(opened(f"site-{n}", "agent", "unreachable", category="pon",
                                    suppressed_by="olt-1"))
    manual = await service.open(category="fiber", summary="cut", severity="minor",
                                target="fib-1", actor="op")
    await service.acknowledge(manual.ref, actor="op")
    assert await service.tally() == TicketTally(active=2, done=0, children=2)
    # Resolving the root gives its still-faulty children tickets of their own; the links
    # under the resolved root are history and count no more.
    await service.resolve(root.ref, actor="op", message="fixed")
    assert await service.tally() == TicketTally(active=3, done=1, children=0)

async def test_news_follows_the_event_ids(service: TicketService,
                                          opened: OpenFactory) -> None:
    assert await service.news() == []
    ticket = await service.handle(opened("olt-1", "agent", "unreachable", category="pon",
                                         summary="olt-1 unreachable"))
    assert ticket is not None
    first = await service.news()
    assert [(n.ref, n.action, n.summary) for n in first] == [
        (ticket.ref, "opened", "olt-1 unreachable")]
    await service.comment(ticket.ref, "on site", actor="op")
    later = await service.news(first[-1].event_id)
    assert [(n.ref, n.action, n.message) for n in later] == [
        (ticket.ref, "commented", "on site")]
    assert await service.news(later[-1].event_id) == []
