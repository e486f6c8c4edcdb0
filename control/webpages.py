"""The browser client: ``/m/{meeting_id}`` serves its page, ``/static/...`` the rest.

The client is static files (no build step) in a folder the CLI passes in; the
page finds the meeting id in its own URL and joins via ``POST /m/{id}/join``.
``/admin`` serves the operators' dashboard from the same folder: the page is
public, everything it shows is read with the API key the operator types in.
"""

from __future__ import annotations

import html
from pathlib import Path

from aiohttp import web

from .errors import MeetingNotFound, NotFound
from .meetings import Meetings

__all__ = ["WebClient"]

# No build step means no content hashes in file names: make browsers
# revalidate so that an upgrade is never half old, half new.
_REVALIDATE = {"Cache-Control": "no-cache"}

# The dashboard holds the API key (in the tab's sessionStorage): it runs only
# its own scripts, talks only to this origin, and is never framed.
_ADMIN_HEADERS = {
    **_REVALIDATE,
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
    ),
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
}


class WebClient:
    """Serves the browser client's files from ``web_root``."""

    def __init__(self, meetings: Meetings, web_root: Path) -> None:
        self._meetings = meetings
        self._root = web_root.resolve()

    def routes(self) -> list[web.RouteDef]:
        """The routes of the join page and its assets."""
        return [
            web.get("/m/{meeting_id}", self.meeting_page),
            web.get("/admin", self.admin_page),
            web.get("/static/{path:.+}", self.static_file),
        ]

    async def meeting_page(self, request: web.Request) -> web.StreamResponse:
        meeting_id = request.match_info["meeting_id"]
        try:
            meeting = await self._meetings.get(meeting_id)
        except MeetingNotFound:
            return web.Response(
                status=404,
                content_type="text/html",
                text=_NOT_FOUND_PAGE.format(meeting_id=html.escape(meeting_id)),
            )
        index = self._root / "index.html"
        if not index.is_file():
            # A broken installation, not the visitor's fault: a 500, logged.
            raise RuntimeError(f"the browser client is missing: {index} does not exist")
        # The page carries the meeting's title, so the pre-join screen can show it
        # before anyone has joined (and without a public meeting endpoint).
        title = html.escape(meeting.title, quote=True)
        page = index.read_text(encoding="utf-8").replace(
            "<title>Townhall</title>",
            f"<title>{title} · Townhall</title>\n"
            f'  <meta name="townhall-meeting-title" content="{title}">',
            1,
        )
        return web.Response(text=page, content_type="text/html", headers=_REVALIDATE)

    async def admin_page(self, request: web.Request) -> web.StreamResponse:
        """The operators' dashboard (it asks for the API key itself)."""
        page = self._root / "admin.html"
        if not page.is_file():
            raise RuntimeError(f"the admin dashboard is missing: {page} does not exist")
        return web.FileResponse(page, headers=_ADMIN_HEADERS)

    async def static_file(self, request: web.Request) -> web.StreamResponse:
        relative = request.match_info["path"]
        target = (self._root / relative).resolve()
        # resolve() follows "..", symlinks included: anything that lands outside
        # the web root is treated as absent, never served.
        if not target.is_relative_to(self._root) or not target.is_file():
            raise NotFound(f"no static file '{relative}'", path=relative)
        return web.FileResponse(target, headers=_REVALIDATE)


_NOT_FOUND_PAGE = """<!doctype html>
<html lang="en">
<head><meta charset="utf-8"><title>Meeting not found · Townhall</title></head>
<body>
<h1>Meeting not found</h1>
<p>There is no meeting <code>{meeting_id}</code> on this server. Check the link you were sent.</p>
</body>
</html>
"""
