"""``townhall bench`` options: --help explains them, bad ones are refused with exit status 2."""

from __future__ import annotations

import argparse

import pytest

from benchmarks.bench.cli import build_parser, parse_args, parse_targets
from benchmarks.forwarding_cpu import translate


def test_help_explains_every_option_with_its_default() -> None:
    parser = build_parser()
    text = parser.format_help()
    for action in parser._actions:
        for option in action.option_strings:
            assert option in text
        if action.help and action.default not in (None, False, argparse.SUPPRESS):
            assert "default" in action.help, action.option_strings
    assert "unshare -n" in text


def test_defaults_per_scenario() -> None:
    assert parse_args([]).sweep == (1, 10, 50)
    assert parse_args(["--scenario", "meeting"]).sweep == (4,)
    assert parse_args(["--scenario", "audio-room"]).sweep == (10,)
    assert [c.label for c in parse_args([]).sfu] == ["townhall"]


def test_targets_with_options_side_by_side() -> None:
    choices = parse_targets("townhall,janus,janus:event_loops=2")
    assert [(c.label, c.kind, c.options) for c in choices] == [
        ("townhall", "townhall", {}),
        ("janus", "janus", {}),
        ("janus:event_loops=2", "janus", {"event_loops": "2"}),
    ]


@pytest.mark.parametrize("bad", ["nginx", "janus:event_loops", "townhall,townhall", ""])
def test_unknown_or_malformed_targets_are_refused(bad: str) -> None:
    with pytest.raises(argparse.ArgumentTypeError):
        parse_targets(bad)


@pytest.mark.parametrize("argv", [
    ["--sweep", "1,x"],
    ["--window-s", "0"],
    ["--video-bitrate", "5000000"],
    ["--scenario", "meeting", "--sweep", "1"],
    ["--drop-period", "1"],
    ["--from-json", "x.json"],
    ["--soak", "--clients", "1"],
])
def test_bad_options_exit_2(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        parse_args(argv)
    assert exit_info.value.code == 2
    assert "townhall bench: error:" in capsys.readouterr().err


def test_forwarding_cpu_is_an_alias_of_the_webinar_sweep() -> None:
    assert translate(["--subscribers", "1,10", "--window-s", "3"]) == [
        "--scenario", "webinar", "--sweep", "1,10", "--window-s", "3",
    ]
    assert translate(["--subscribers=5"]) == ["--scenario", "webinar", "--sweep", "5"]
