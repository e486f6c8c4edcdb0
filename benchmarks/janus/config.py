"""A Janus configuration of its own for the benchmark: videoroom + plain HTTP, loopback only.

`write_config` writes ``janus.jcfg``, ``janus.plugin.videoroom.jcfg`` and
``janus.transport.http.jcfg`` into a folder of the benchmark's work dir, and
folders of symlinks so that Janus loads the videoroom plugin and the HTTP
transport and nothing else (no event handlers, no loggers, no other plugins
reading ``/etc/janus``). The HTTP API listens on 127.0.0.1 only, the admin
API is off, there is no STUN or TURN server, and ICE is limited to ``lo``.
"""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass
from pathlib import Path

__all__ = ["JANUS_LIBRARIES", "JanusSettings", "jcfg_string", "write_config"]

# Where Debian's janus package (1.1.2) puts its plugins and transports.
JANUS_LIBRARIES = Path("/usr/lib/x86_64-linux-gnu/janus")
VIDEOROOM = "libjanus_videoroom.so"
HTTP_TRANSPORT = "libjanus_http.so"


@dataclass(frozen=True)
class JanusSettings:
    """What differs between runs: ports, the threading mode, the log level."""

    http_port: int
    rtp_ports: tuple[int, int] = (20000, 40000)
    # None: Janus's default, one thread (GLib loop) per handle; N: N shared loops.
    event_loops: int | None = None
    debug_level: int = 3
    session_timeout_s: int = 60
    libraries: Path = JANUS_LIBRARIES

    def __post_init__(self) -> None:
        low, high = self.rtp_ports
        if not 1024 <= low < high <= 65535:
            raise ValueError(f"rtp_ports must be 1024 <= low < high <= 65535, not {low}-{high}")
        if not 0 < self.http_port < 65536:
            raise ValueError(f"http_port must be between 1 and 65535, not {self.http_port}")
        if self.event_loops is not None and not 1 <= self.event_loops <= 64:
            raise ValueError(f"event_loops must be between 1 and 64, not {self.event_loops}")
        if not 0 <= self.debug_level <= 7:
            raise ValueError(f"debug_level must be between 0 and 7, not {self.debug_level}")


def jcfg_string(value: str) -> str:
    """A libconfig string literal (the same escapes as JSON's for what we write)."""
    return json.dumps(value)


def _link_only(folder: Path, source: Path, name: str) -> Path:
    """``folder`` with one symlink, to ``source/name``: Janus loads every library in a folder."""
    folder.mkdir(parents=True, exist_ok=True)
    for old in folder.iterdir():
        old.unlink()
    if name:
        target = source / name
        if not target.exists():
            raise FileNotFoundError(f"{target} is missing: is Debian's janus package installed?")
        (folder / name).symlink_to(target)
    return folder


def write_config(folder: Path, settings: JanusSettings) -> Path:
    """Write the configuration into ``folder``; the path of ``janus.jcfg``."""
    folder.mkdir(parents=True, exist_ok=True)
    plugins = _link_only(folder / "plugins", settings.libraries / "plugins", VIDEOROOM)
    transports = _link_only(folder / "transports", settings.libraries / "transports",
                            HTTP_TRANSPORT)
    nothing = _link_only(folder / "nothing", settings.libraries, "")
    loops = "" if settings.event_loops is None else f"\tevent_loops = {settings.event_loops}\n"
    low, high = settings.rtp_ports
    main = (
        "general: {\n"
        f"\tconfigs_folder = {jcfg_string(str(folder))}\n"
        f"\tplugins_folder = {jcfg_string(str(plugins))}\n"
        f"\ttransports_folder = {jcfg_string(str(transports))}\n"
        f"\tevents_folder = {jcfg_string(str(nothing))}\n"
        f"\tloggers_folder = {jcfg_string(str(nothing))}\n"
        f"\tdebug_level = {settings.debug_level}\n"
        "\tdebug_colors = false\n"
        "\tdebug_timestamps = true\n"
        # The admin API is off (no transport enables it); the secret is random anyway.
        f"\tadmin_secret = {jcfg_string(secrets.token_urlsafe(24))}\n"
        "\tserver_name = \"townhall-bench\"\n"
        f"\tsession_timeout = {settings.session_timeout_s}\n"
        f"{loops}"
        "}\n"
        "media: {\n"
        f"\trtp_port_range = \"{low}-{high}\"\n"
        "}\n"
        "nat: {\n"
        "\tnice_debug = false\n"
        "\tfull_trickle = false\n"
        "\tignore_mdns = true\n"
        "\tice_enforce_list = \"lo\"\n"
        "}\n"
        "plugins: {\n}\n"
        "transports: {\n}\n"
        "loggers: {\n}\n"
        "events: {\n\tbroadcast = false\n}\n"
    )
    http = (
        "general: {\n"
        "\tjson = \"compact\"\n"
        "\tbase_path = \"/janus\"\n"
        "\thttp = true\n"
        f"\tport = {settings.http_port}\n"
        "\tip = \"127.0.0.1\"\n"
        "\thttps = false\n"
        "}\n"
        "admin: {\n"
        "\tadmin_http = false\n"
        "\tadmin_https = false\n"
        "}\n"
        "cors: {\n}\n"
    )
    # Rooms are created over the API, one per scenario; none is configured here.
    videoroom = "general: {\n}\n"
    path = folder / "janus.jcfg"
    path.write_text(main)
    (folder / "janus.transport.http.jcfg").write_text(http)
    (folder / "janus.plugin.videoroom.jcfg").write_text(videoroom)
    return path
