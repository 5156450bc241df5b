"""The bytes of a CSV or JSON Lines file, checked before the parser reads them: UTF-8 (no UTF-16 or UTF-32
byte-order mark, no NUL byte, no invalid sequence) and no line longer than the reader's block.

Why ahead of pyarrow: its CSV reader reports UTF-16 or binary input as ragged rows and a 50 MB line as an empty
file; checking the bytes first gives BAD_ENCODING and LINE_TOO_LONG with the byte offset (docs/contracts.md,
"Which code wins").
"""

from __future__ import annotations

import codecs
from collections import deque
from typing import BinaryIO

from mlvault.errors import ContractReason, VerificationError

BLOCK_SIZE = 1 << 20  # the reader's block; a CSV or JSON Lines line (the header included) may not be longer
_BOMS = {
    codecs.BOM_UTF32_LE: "UTF-32",
    codecs.BOM_UTF32_BE: "UTF-32",
    codecs.BOM_UTF16_LE: "UTF-16",
    codecs.BOM_UTF16_BE: "UTF-16",
}
_RETAINED_READS = 8  # JSON Lines: the reads kept to name the row and field of an error (pyarrow reads ahead)


def fail(reason: str, detail: str) -> VerificationError:
    return VerificationError(reason, detail)


class TextGuard:
    """The bytes of a CSV or JSON Lines file as the parser reads them, checked first: UTF-8 (no UTF-16 or UTF-32
    byte-order mark, no NUL byte, no invalid sequence) and no line longer than BLOCK_SIZE. A defect raises
    BAD_ENCODING or LINE_TOO_LONG with its byte offset before the parser sees those bytes.

    JSON Lines: every read ends at a line break, so that each of pyarrow's blocks is one read and one record
    batch; the last reads are kept, so that an error of the parser can be traced to its line. CSV: the first
    line (the header) is kept, to name the columns of an error raised before the reader has a schema."""

    def __init__(self, raw: BinaryIO, *, jsonl: bool = False) -> None:
        self._raw = raw
        self._aligned = jsonl
        self._first_line = "the first line" if jsonl else "the header"
        self.head = b""  # the bytes up to the first line break (or the first block)
        self._replay = b""  # CSV: bytes read ahead (the first line), returned by the next reads
        self._pending = b""  # an incomplete UTF-8 sequence at the end of the last read
        self._carry = b""  # aligned: the bytes after the last line break, returned by the next read
        self.offset = 0  # bytes of the file checked so far
        self._line_start = 0  # offset of the first byte after the last line break seen
        self.header_end: int | None = None  # offset of the first line break
        self.batches = 0  # record batches the caller took from the parser (aligned: one per read)
        self.reads: deque[tuple[int, bytes]] = deque(maxlen=_RETAINED_READS)  # aligned: (read number, bytes)
        self._read_count = 0

    closed = False

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        if not self._aligned:
            if self._replay:  # the first line, read ahead to check the header
                wanted = len(self._replay) if size is None or size < 0 else size
                data, self._replay = self._replay[:wanted], self._replay[wanted:]
                if len(data) < wanted:
                    more = self._raw.read(wanted - len(data))
                    self._check(more)
                    data += more
                return data
            data = self._raw.read(size)
            self._check(data)
            return data
        wanted = BLOCK_SIZE if size is None or size < 0 else size
        data = self._carry + self._fill(wanted - len(self._carry))
        if len(data) < wanted:  # the end of the file
            self._carry = b""
        else:
            cut = data.rfind(b"\n") + 1
            if cut == 0:
                raise self._too_long(self._line_start)
            data, self._carry = data[:cut], data[cut:]
        if data:
            self.reads.append((self._read_count, data))
            self._read_count += 1
        return data

    def _fill(self, size: int) -> bytes:
        parts, left = [], size
        while left > 0:
            part = self._raw.read(left)
            if not part:
                break
            self._check(part)
            parts.append(part)
            left -= len(part)
        return b"".join(parts)

    def _check(self, data: bytes) -> None:
        start = self.offset
        if not data:
            if self._pending:
                self._bad(start - len(self._pending), self._pending, "a UTF-8 sequence cut short by the end")
            return
        if self.header_end is None:
            first = data.find(b"\n")
            self.head += data if first < 0 else data[: first + 1]
            if first >= 0:
                self.header_end = start + first
        if start == 0:
            for bom, name in _BOMS.items():
                if data.startswith(bom):
                    self._bad(0, data, f"a {name} byte-order mark (the file is {name}, not UTF-8)")
        # the first defect of the bytes wins: a NUL byte (valid UTF-8, but not text) or an invalid sequence
        nul = data.find(b"\x00")
        text = self._pending + data if self._pending else data
        if text.isascii():
            self._pending = b""
        else:
            try:
                _, used = codecs.utf_8_decode(text, "strict", False)
            except UnicodeDecodeError as err:
                at = start - len(self._pending) + err.start
                if nul < 0 or at < start + nul:
                    self._bad(at, text[err.start :], "invalid UTF-8")
            else:
                self._pending = text[used:]
        if nul >= 0:
            self._bad(start + nul, data[nul:], "a NUL byte (binary data, or UTF-16 without a byte-order mark)")
        self.offset += len(data)
        last = data.rfind(b"\n")
        if last >= 0:
            self._line_start = start + last + 1
        if self.offset - self._line_start >= BLOCK_SIZE:
            raise self._too_long(self._line_start)

    def _where(self, offset: int) -> str:
        if self.header_end is None or offset <= self.header_end:
            return f"at byte {offset} (in {self._first_line})"
        return f"at byte {offset}"

    def _bad(self, offset: int, data: bytes, what: str) -> None:
        raise fail(ContractReason.BAD_ENCODING, f"{self._where(offset)}: {what}: {data[:16]!r}; expected UTF-8 text")

    def first_line_names(self, delimiter: str) -> tuple[str, ...]:
        """CSV: read ahead to the end of the first line (it is returned again by the next reads) and return its
        names: the header is checked before the reader converts any row."""
        parts = []
        while self.header_end is None:
            part = self._raw.read(BLOCK_SIZE)
            self._check(part)
            if not part:
                break
            parts.append(part)
        self._replay = b"".join(parts)
        return self.header_names(delimiter) if self.header_end is not None else ()

    def header_names(self, delimiter: str) -> tuple[str, ...]:
        """The CSV header's names, from the first line (for an error raised while the reader opens)."""
        import csv as pycsv

        if self.head.count(b'"') % 2:
            return ()  # a quoted name with a line break: the reader decides
        try:
            line = self.head.decode("utf-8-sig").rstrip("\r\n")  # the reader skips a UTF-8 byte-order mark too
            return tuple(next(pycsv.reader([line], delimiter=delimiter)))
        except (UnicodeDecodeError, StopIteration, pycsv.Error):
            return ()

    def _too_long(self, start: int) -> VerificationError:
        first = f" ({self._first_line})" if start == 0 else ""
        return fail(
            ContractReason.LINE_TOO_LONG,
            f"the line starting at byte {start}{first} runs for {BLOCK_SIZE} bytes or more without a line break; "
            f"lines must be shorter than {BLOCK_SIZE} bytes (the reader's block)",
        )


def is_utf8(value: bytes) -> bool:
    try:
        value.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True
