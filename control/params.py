"""Query parameters: parsed and bounded at the edge, unknown ones refused by name."""

from __future__ import annotations

from aiohttp import web

from .errors import InvalidParameter

__all__ = ["DEFAULT_PAGE_SIZE", "MAX_PAGE_SIZE", "integer_parameter", "page_parameters"]

DEFAULT_PAGE_SIZE = 20
MAX_PAGE_SIZE = 100


def page_parameters(
    request: web.Request, *, default: int = DEFAULT_PAGE_SIZE
) -> tuple[int, str | None]:
    """``limit`` (1 to MAX_PAGE_SIZE) and ``cursor``; any other parameter is refused."""
    allow_only(request, ("limit", "cursor"))
    limit = integer_parameter(request, "limit", default, 1, MAX_PAGE_SIZE)
    cursor = request.query.get("cursor") or None
    return limit, cursor


def integer_parameter(
    request: web.Request, name: str, default: int, minimum: int, maximum: int
) -> int:
    """An integer query parameter within bounds, or InvalidParameter naming it."""
    text = request.query.get(name)
    if text is None:
        return default
    if not (text.isascii() and text.isdigit()) or not minimum <= int(text) <= maximum:
        raise InvalidParameter(
            f"'{name}' must be an integer from {minimum} to {maximum}", parameter=name
        )
    return int(text)


def allow_only(request: web.Request, names: tuple[str, ...]) -> None:
    """Refuse query parameters other than ``names``."""
    for name in request.query:
        if name not in names:
            raise InvalidParameter(f"unknown query parameter '{name}'", parameter=name)
