"""Logging set-up: one line per event, on stderr, with the peer id.

Every record is one line whatever its values hold: the message (the format with its
arguments: a URL path, a username, an error text) has its control characters escaped
(``\\n`` -> ``\\x0a``, NUL -> ``\\x00``, ESC, DEL, C1, U+2028/9), so no request can forge a
log line or hide one. A traceback keeps its lines, each escaped the same way and indented,
so it never looks like a record of its own either.
"""

from __future__ import annotations

import logging
import re

_CONTROLS = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")


def _escape(found: re.Match[str]) -> str:
    code = ord(found.group())
    return f"\\x{code:02x}" if code <= 0xFF else f"\\u{code:04x}"


def escape_controls(text: str) -> str:
    """``text`` with every control character written as an escape."""
    return _CONTROLS.sub(_escape, text)


class OneLineFormatter(logging.Formatter):
    """A formatter whose records cannot span or forge lines (see the module doc)."""

    def formatMessage(self, record: logging.LogRecord) -> str:
        record.message = escape_controls(record.message)
        return super().formatMessage(record)

    def formatException(self, ei: object) -> str:
        return self._indent(super().formatException(ei))  # type: ignore[arg-type]

    def formatStack(self, stack_info: str) -> str:
        return self._indent(super().formatStack(stack_info))

    @staticmethod
    def _indent(text: str) -> str:
        return "\n".join("    " + escape_controls(line) for line in text.splitlines())


def configure(level: str = "INFO", peer_id: str = "-") -> None:
    handler = logging.StreamHandler()
    handler.setFormatter(
        OneLineFormatter(f"%(asctime)s %(levelname)s [{peer_id}] %(name)s: %(message)s")
    )
    logging.basicConfig(level=level, handlers=[handler], force=True)
    logging.getLogger("httpx").setLevel(logging.WARNING)
    logging.getLogger("httpcore").setLevel(logging.WARNING)
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
