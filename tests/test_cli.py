"""``datagems <command>``: a command whose optional extra is missing says how to install it."""

from __future__ import annotations

import sys

import pytest

from datagems import cli


@pytest.fixture
def without_psutil(monkeypatch: pytest.MonkeyPatch) -> None:
    """As after ``pip install -e .`` (``make run``): the bench extra is not installed."""
    monkeypatch.setitem(sys.modules, "psutil", None)  # ``import psutil`` now fails
    for name in [
        m for m in sys.modules if m == "datagems.bench" or m.startswith("datagems.bench.")
    ]:
        monkeypatch.delitem(sys.modules, name)


def test_bench_without_its_extra_says_how_to_install_it(
    without_psutil: None, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main(["bench", "--quick"]) == 2
    said = capsys.readouterr().err
    assert "'psutil'" in said
    assert "pip install -e '.[bench]'" in said
    assert "Traceback" not in said


def test_help_still_lists_every_command_when_an_extra_is_missing(
    without_psutil: None, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as ended:
        cli.main(["--help"])
    assert ended.value.code == 0
    shown = capsys.readouterr().out
    assert all(name in shown for name in cli.COMMANDS)
