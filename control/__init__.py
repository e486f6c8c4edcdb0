"""The control plane: REST API, meetings, participants, join tokens, the store.

It imports nothing from the other planes except ``townhall.contract``; the
composition root (``townhall.cli``) builds it from a :class:`ControlConfig`.
"""

from .app import create_app
from .settings import ControlConfig

__all__ = ["ControlConfig", "create_app"]
