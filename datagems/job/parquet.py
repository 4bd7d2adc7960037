"""Parquet exports (pyarrow): the row set of ``datagems.job.rows``, typed, in row groups.

A column's type follows the values it holds (read in the header pass): booleans,
integers (int64), numbers (float64, integers among them widened), text; a column with
values of several kinds, or arrays and objects, holds their JSON text (strings as they
are). Rows are written in groups of ``PARQUET_ROWS`` and each group's bytes are sent as
soon as it is written, so memory holds one group whatever the size of the job.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import orjson
import pyarrow as pa
import pyarrow.parquet as pq

from datagems.job.rows import PARQUET_ROWS, ExportOptions, Header, Row, row_cells


class _Spool:
    """A write-only file whose bytes are taken out as they come (``take``)."""

    def __init__(self) -> None:
        self.buffer = bytearray()
        self.position = 0
        self.closed = False

    def write(self, data: Any) -> int:
        chunk = bytes(data)
        self.buffer.extend(chunk)
        self.position += len(chunk)
        return len(chunk)

    def tell(self) -> int:
        return self.position

    def flush(self) -> None:
        pass

    def close(self) -> None:
        self.closed = True

    def writable(self) -> bool:
        return True

    def take(self) -> bytes:
        chunk = bytes(self.buffer)
        self.buffer.clear()
        return chunk


def _arrow_type(kinds: set[str]) -> pa.DataType:
    kinds = kinds - {"null"}
    if kinds == {"bool"}:
        return pa.bool_()
    if kinds == {"int"}:
        return pa.int64()
    if kinds and kinds <= {"int", "float"}:
        return pa.float64()
    return pa.string()


def _text(value: Any) -> str | None:
    if value is None or isinstance(value, str):
        return value
    return orjson.dumps(value).decode()


def _converter(kind: pa.DataType) -> Any:
    """What a value needs to fit its column (``None``: nothing)."""
    if kind == pa.string():
        return _text
    if kind == pa.float64():
        return lambda value: None if value is None else float(value)
    return None


def parquet_chunks(found: Iterator[Row], header: Header, options: ExportOptions) -> Iterator[bytes]:
    types = [_arrow_type(header.kinds.get(name, set())) for name in header.columns]
    schema = pa.schema(
        [pa.field(name, kind) for name, kind in zip(header.columns, types, strict=True)]
    )
    convert = [_converter(kind) for kind in types]
    spool = _Spool()
    writer = pq.ParquetWriter(spool, schema, compression="zstd")
    try:
        columns: list[list[Any]] = [[] for _ in header.columns]
        count = 0
        for row in found:
            for at, value in enumerate(row_cells(row, header, options)):
                fit = convert[at]
                columns[at].append(value if fit is None else fit(value))
            count += 1
            if count == PARQUET_ROWS:
                writer.write_table(pa.Table.from_arrays(columns, schema=schema))
                columns, count = [[] for _ in header.columns], 0
                yield spool.take()
        if count or not header.columns:
            writer.write_table(pa.Table.from_arrays(columns, schema=schema))
    finally:
        writer.close()
    yield spool.take()
