"""One line per record, whatever a logged value holds (issue 13 item 13)."""

from __future__ import annotations

import io
import logging

from datagems.logs import OneLineFormatter, escape_controls


def formatted(message: str, *args: object, exc: BaseException | None = None) -> str:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(OneLineFormatter("%(asctime)s %(levelname)s [a] %(name)s: %(message)s"))
    logger = logging.getLogger("tests.logs")
    logger.handlers, logger.propagate, logger.level = [handler], False, logging.INFO
    try:
        if exc is None:
            logger.warning(message, *args)
        else:
            try:
                raise exc
            except BaseException:
                logger.exception(message, *args)
    finally:
        logger.handlers = []
    return stream.getvalue()


def test_a_value_with_newlines_nul_and_escapes_stays_on_its_line() -> None:
    path = "/api/tasks/x\r\n2031-01-01 00:00:00,000 INFO [a] forged: admin signed in\x00\x1b[2J"
    text = formatted("GET %s -> %d %s", path, 401, "authentication required")
    assert text.count("\n") == 1 and text.endswith("\n")
    assert "\x00" not in text and "\x1b" not in text and "\r" not in text
    assert "x\\x0d\\x0a2031-01-01" in text and "\\x00\\x1b[2J" in text


def test_unicode_line_separators_and_c1_controls_are_escaped_too() -> None:
    assert escape_controls("a\u2028b\u2029c\x85d\x7f") == "a\\u2028b\\u2029c\\x85d\\x7f"
    assert escape_controls("tab\tand café ✓") == "tab\\x09and café ✓"


def test_a_traceback_keeps_its_lines_indented_so_none_looks_like_a_record() -> None:
    text = formatted("failed for %s", "bob", exc=ValueError("bad\n2031-01-01 forged line"))
    first, *rest = text.rstrip("\n").split("\n")
    assert first.endswith("failed for bob")
    assert rest and all(line.startswith("    ") for line in rest)
    assert not [line for line in text.split("\n") if line.startswith("2031")]
