"""Errors of the protocol layer: who broke the protocol, us or the peer.

`LocalProtocolError`: our own code asked for something the protocol forbids (a bug here).
`RemoteProtocolError`: the modem or the line sent something we cannot accept.
Pure module: no I/O.
"""

from __future__ import annotations

from firmware_app.errors import FrontdeskError


class ProtocolError(FrontdeskError):
    """A protocol rule was broken (see the two subclasses for by whom)."""


class LocalProtocolError(ProtocolError):
    """We tried to do something the protocol does not allow (e.g. send while a command runs)."""


class RemoteProtocolError(ProtocolError):
    """The peer (modem, line, network) sent something malformed or unexpected."""
