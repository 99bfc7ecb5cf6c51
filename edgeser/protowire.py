"""Protocol-buffers wire format, the little of it that reading ONNX files without the ``onnx``
package needs: varints and the wire types. Standard library only; shared by the bundle's
external-data scan and the engine checks."""

from __future__ import annotations

VARINT, FIXED64, LEN, START_GROUP, END_GROUP, FIXED32 = range(6)


class WireError(ValueError):
    """The bytes are not protobuf wire format (or not the ONNX this reader understands); the
    message says what and where."""


def varint(buf, pos: int, end: int) -> tuple[int, int]:
    """``(value, position after it)`` of the varint at ``pos``; WireError when it is truncated
    or longer than 10 bytes."""
    result = shift = 0
    while True:
        if pos >= end:
            raise WireError(f"truncated varint at byte {pos}")
        byte = buf[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if byte < 0x80:
            return result, pos
        shift += 7
        if shift >= 70:
            raise WireError(f"varint longer than 10 bytes at byte {pos}")
