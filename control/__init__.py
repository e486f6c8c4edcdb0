"""The control plane: REST API, meetings, admission policy, lobby, moderation, chat, breakout
rooms, audit log, tokens, the store.

It imports nothing from the other planes except ``townhall.contract``; the
composition root (``townhall.cli``) builds it from a :class:`ControlConfig`
and the media plane, and hands the media plane the control plane's
``ControlEvents`` (``app[CONTROL_EVENTS]``).
"""

from .app import CONTROL_EVENTS, create_app
from .policy import Policy
from .settings import ControlConfig

__all__ = ["CONTROL_EVENTS", "ControlConfig", "Policy", "create_app"]
