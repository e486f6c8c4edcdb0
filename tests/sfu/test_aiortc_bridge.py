"""The aiortc internals the forwarding path relies on are where we expect them."""

from __future__ import annotations

import pytest
from aiortc.rtcdtlstransport import RTCDtlsTransport

from sfu.aiortc_bridge import InternalsChanged, check_internals, new_peer_connection


def test_installed_aiortc_has_every_internal_we_use() -> None:
    check_internals()


def test_a_moved_internal_fails_loudly(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delattr(RTCDtlsTransport, "_handle_rtcp_data")
    with pytest.raises(InternalsChanged, match="_handle_rtcp_data is gone"):
        check_internals()


async def test_peer_connections_never_fall_back_to_a_public_stun_server() -> None:
    pc = new_peer_connection(())
    pc.addTransceiver("audio")
    gatherer = pc.getTransceivers()[0].sender.transport.transport.iceGatherer
    assert gatherer._connection.stun_server is None
    await pc.close()
