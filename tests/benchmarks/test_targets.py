"""The target factory: known kinds, lazy imports, a clear error for a missing target."""

from __future__ import annotations

import pytest

import benchmarks.targets as targets
from benchmarks.targets import TargetInfo, TargetUnavailable, client_for, server_for
from benchmarks.targets.townhall import TownhallClient, TownhallServer


def test_townhall_is_built_by_kind() -> None:
    assert isinstance(server_for("townhall"), TownhallServer)
    client = client_for(TargetInfo("townhall", "http://127.0.0.1:1"))
    assert isinstance(client, TownhallClient)


def test_unknown_kind_and_unknown_option_are_value_errors() -> None:
    with pytest.raises(ValueError, match="unknown SFU kind 'nginx'"):
        server_for("nginx")
    with pytest.raises(ValueError, match="does not know the option"):
        server_for("townhall", {"event_loops": "2"})


def test_a_missing_target_module_says_target_not_available(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(targets, "KINDS", (*targets.KINDS, "absent"))
    with pytest.raises(TargetUnavailable, match="target not available: absent"):
        server_for("absent")
