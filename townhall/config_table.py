"""One TOML table being read, and the error that names the offending key.

:class:`Table` is what every section parser of :mod:`townhall.config` reads
through: typed getters that raise :class:`ConfigError` with the dotted key
(``sfu.packet_cache_size: expected integer, got string``) and remember which
keys were read, so that an unknown one is refused too.
"""

from __future__ import annotations

import datetime

__all__ = ["ConfigError", "Table", "type_name"]


class ConfigError(Exception):
    """The configuration is invalid; the message starts with the offending key."""


class Table:
    """One TOML table being read: typed getters that remember which keys were used."""

    def __init__(self, name: str, raw: object) -> None:
        if not isinstance(raw, dict):
            raise ConfigError(f"{name}: expected table, got {type_name(raw)}")
        self.name = name
        self._raw: dict[str, object] = raw
        self._used: set[str] = set()

    def key(self, key: str) -> str:
        return f"{self.name}.{key}" if self.name else key

    def _get(self, key: str) -> object | None:
        self._used.add(key)
        return self._raw.get(key)

    def _expected(self, key: str, expected: str, value: object) -> ConfigError:
        return ConfigError(f"{self.key(key)}: expected {expected}, got {type_name(value)}")

    def table(self, key: str) -> Table:
        value = self._get(key)
        return Table(self.key(key), {} if value is None else value)

    def tables(self, key: str) -> list[Table]:
        value = self._get(key)
        if value is None:
            return []
        if not isinstance(value, list):
            raise self._expected(key, "array of tables", value)
        return [Table(f"{self.key(key)}[{i}]", item) for i, item in enumerate(value)]

    def string(self, key: str, default: str, *, non_empty: bool = False) -> str:
        value = self.optional_string(key, min_length=1 if non_empty else 0)
        return default if value is None else value

    def optional_string(self, key: str, *, min_length: int = 0) -> str | None:
        value = self._get(key)
        if value is None:
            return None
        if not isinstance(value, str):
            raise self._expected(key, "string", value)
        if len(value) < min_length:
            raise ConfigError(f"{self.key(key)}: must be at least {min_length} characters")
        return value

    def integer(self, key: str, default: int, *, minimum: int, maximum: int | None = None) -> int:
        value = self._get(key)
        if value is None:
            return default
        # bool is an int subclass in Python, but `true` is not a number in TOML.
        if not isinstance(value, int) or isinstance(value, bool):
            raise self._expected(key, "integer", value)
        if value < minimum or (maximum is not None and value > maximum):
            bound = f"between {minimum} and {maximum}" if maximum is not None else f">= {minimum}"
            raise ConfigError(f"{self.key(key)}: must be {bound}, got {value}")
        return value

    def number(self, key: str, default: float, *, minimum: float) -> float:
        value = self._get(key)
        if value is None:
            return default
        if not isinstance(value, int | float) or isinstance(value, bool):
            raise self._expected(key, "number", value)
        if value < minimum:
            raise ConfigError(f"{self.key(key)}: must be >= {minimum}, got {value}")
        return float(value)

    def optional_number(self, key: str) -> float | None:
        """The number, or None when absent; does not mark the key as read."""
        value = self._raw.get(key)
        if value is None:
            return None
        if not isinstance(value, int | float) or isinstance(value, bool):
            raise self._expected(key, "number", value)
        return float(value)

    def boolean(self, key: str, default: bool) -> bool:
        value = self._get(key)
        if value is None:
            return default
        if not isinstance(value, bool):
            raise self._expected(key, "boolean", value)
        return value

    def choice(self, key: str, default: str, choices: tuple[str, ...]) -> str:
        value = self._get(key)
        if value is None:
            return default
        if value not in choices:
            raise ConfigError(
                f"{self.key(key)}: must be one of {', '.join(choices)}, got {value!r}"
            )
        return str(value)

    def strings(
        self,
        key: str,
        default: tuple[str, ...] | None,
        *,
        allow_single: bool = False,
        allow_empty: bool = False,
    ) -> tuple[str, ...]:
        value = self._get(key)
        if value is None:
            if default is None:
                raise ConfigError(f"{self.key(key)}: is required")
            return default
        if allow_single and isinstance(value, str):
            value = [value]
        if not isinstance(value, list):
            raise self._expected(key, "array of strings", value)
        for index, item in enumerate(value):
            if not isinstance(item, str) or not item:
                raise ConfigError(
                    f"{self.key(key)}[{index}]: expected non-empty string, got {type_name(item)}"
                )
        if not value and not allow_empty:
            raise ConfigError(f"{self.key(key)}: must not be empty")
        return tuple(value)

    def reject_unknown(self) -> None:
        for key in self._raw:
            if key not in self._used:
                raise ConfigError(f"{self.key(key)}: unknown key")


def type_name(value: object) -> str:
    """The TOML name of a parsed value's type, for error messages."""
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "float"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "table"
    if isinstance(value, datetime.date | datetime.time):
        return "datetime"
    return type(value).__name__
