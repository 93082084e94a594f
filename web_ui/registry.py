"""Where features plug into the page shell: navigation entries, dashboard cards, custom pages.

Each feature module's `init_app(app)` registers what it adds; the layout shows only what was
registered, so the navigation grows as features land and never shows an empty promise.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from flask import Flask, current_app

if TYPE_CHECKING:
    from firmware_app.services import Services

KEY = "frontdesk.registry"


@dataclass(frozen=True, slots=True)
class NavItem:
    """One navigation entry. `prefix`: URL path that marks it as the current page."""

    label: str
    endpoint: str
    order: int
    prefix: str = ""


@dataclass(frozen=True, slots=True)
class Card:
    """A dashboard card: a template rendered with `context(services)` (and `services`).

    `visible(services)` may hide it (for example until a feature has something to show).
    """

    template: str
    order: int
    context: Callable[[Services], dict[str, Any]] | None = None
    visible: Callable[[Services], bool] | None = None


@dataclass(slots=True)
class Registry:
    nav: list[NavItem] = field(default_factory=list)
    cards: list[Card] = field(default_factory=list)
    # settings section name -> endpoint of a page made for it (instead of the generic form)
    section_pages: dict[str, str] = field(default_factory=dict)

    def nav_items(self) -> list[NavItem]:
        return sorted(self.nav, key=lambda n: (n.order, n.label))

    def visible_cards(self, services: Services) -> list[Card]:
        cards = [c for c in self.cards if c.visible is None or c.visible(services)]
        return sorted(cards, key=lambda c: c.order)


def registry(app: Flask | None = None) -> Registry:
    app = app or current_app
    reg: Registry = app.extensions[KEY]
    return reg


def add_nav(app: Flask, label: str, endpoint: str, order: int, prefix: str = "") -> None:
    """Show `label` in the navigation, linking to `endpoint`; lower `order` comes first.

    Orders in use: 0 Home, 80 Settings, 85 Backup, 90 System. Channels go in between
    (for example 10 Lines, 20 Calls, 30 Inbox, 40 Hours).
    """
    registry(app).nav.append(NavItem(label, endpoint, order, prefix))


def add_card(app: Flask, card: Card) -> None:
    """Put a card on the dashboard. Orders in use: 0 welcome, 10 checklist, 90 system."""
    registry(app).cards.append(card)


def add_section_page(app: Flask, section: str, endpoint: str) -> None:
    """Edit settings section `section` on `endpoint` instead of the generic form."""
    registry(app).section_pages[section] = endpoint
