"""Fax test fixtures: the web fixtures (services on a fresh data dir, app, client, owner)."""

from tests.web.conftest import (  # noqa: F401 - fixtures used by name
    app,
    client,
    fast_hash,
    logged_in,
    owner,
    services,
)
