"""What an attempt keeps of a rejected answer: all of it up to 4 KiB, else its first 4 KiB
(whole characters) marked as cut with the answer's full size."""

from __future__ import annotations

from datagems.inference.pipeline import RAW_KEPT_BYTES, _kept_raw


def test_a_short_rejected_answer_is_kept_whole() -> None:
    assert _kept_raw("Sure! Here is a record.") == {"raw": "Sure! Here is a record."}


def test_a_long_answer_is_cut_at_4_kib_on_a_character_and_says_so() -> None:
    answer = "é" * RAW_KEPT_BYTES  # two bytes each: 8 KiB
    kept = _kept_raw(answer)
    assert kept["rawCut"] is True and kept["rawBytes"] == 2 * RAW_KEPT_BYTES
    assert len(kept["raw"].encode()) <= RAW_KEPT_BYTES
    assert kept["raw"] == "é" * (RAW_KEPT_BYTES // 2)
