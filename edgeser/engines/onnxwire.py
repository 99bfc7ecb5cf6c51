"""What an ONNX file holds, read from the protobuf wire format (the runtime has no ``onnx``
package): :func:`scan_onnx`.

Used before TensorRT sees a graph or an engine is run: which operators a bundle's graph uses
(an fp16 engine needs a float graph; an int8 one a static QDQ graph), whether its INT8 zero
points are all 0 (TensorRT takes symmetric INT8 only), and which engine file a context model's
``EPContext`` node names. The file is mapped, not read: tensor payloads are skipped by offset
and only the zero-point tensors are decoded, so a 1 GB graph costs milliseconds.

Field numbers from onnx/onnx.proto (ModelProto, GraphProto, NodeProto, AttributeProto,
TensorProto); tests build the graphs with the ``onnx`` package and read them back here.
Standard library only.
"""

from __future__ import annotations

import mmap
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from edgeser import protowire

__all__ = ["EpContextNode", "GraphScan", "OnnxReadError", "scan_onnx"]

MODEL_GRAPH = 7  # ModelProto.graph
GRAPH_NODE = 1  # GraphProto.node
GRAPH_INITIALIZER = 5  # GraphProto.initializer
NODE_INPUT, NODE_OUTPUT, NODE_NAME, NODE_OP_TYPE, NODE_ATTRIBUTE, NODE_DOMAIN = 1, 2, 3, 4, 5, 7
ATTR_NAME, ATTR_I, ATTR_S, ATTR_T = 1, 3, 4, 5
TENSOR_DATA_TYPE, TENSOR_INT32_DATA, TENSOR_NAME, TENSOR_RAW_DATA = 2, 5, 8, 9
TENSOR_EXTERNAL_DATA = 13
# TensorProto.DataType values of the zero points that matter.
UINT8, INT8 = 2, 3
EP_CONTEXT_OP = "EPContext"
QDQ_OPS = ("QuantizeLinear", "DequantizeLinear")
# A zero-point tensor larger than this is not a zero point (per-channel ones have one value per
# output channel, a few thousand at most).
MAX_ZERO_POINT_BYTES = 1 << 20

_VARINT, _FIXED64, _LEN, _FIXED32 = (protowire.VARINT, protowire.FIXED64, protowire.LEN,
                                     protowire.FIXED32)


# The bytes are not an ONNX model this reader understands; the message says what.
OnnxReadError = protowire.WireError


@dataclass(frozen=True)
class EpContextNode:
    """An ``EPContext`` node: ``embed_mode`` 0 names the engine file in ``cache_context``
    (relative to the model's folder); 1 embeds the engine (``cache_context`` is then None)."""

    name: str
    embed_mode: int | None
    cache_context: str | None
    hardware_architecture: str | None


@dataclass(frozen=True)
class GraphScan:
    """What :func:`scan_onnx` found in a model's main graph."""

    op_types: frozenset  # operator names (the domain left out)
    nodes: int
    nonzero_zero_points: tuple[str, ...]  # Q/DQ nodes whose zero point is not all 0
    unsigned_zero_points: tuple[str, ...]  # Q/DQ nodes quantizing to uint8
    ep_context: tuple[EpContextNode, ...]
    external_data: bool  # a tensor of the main graph keeps its data in another file

    def uses(self, *ops: str) -> list[str]:
        return sorted(op for op in ops if op in self.op_types)


_varint = protowire.varint


def _fields(buf, start: int, end: int) -> Iterator[tuple[int, int, object]]:
    """``(field number, wire type, value)`` of one message: an int for varints, ``(start,
    end)`` offsets for length-delimited and fixed-size values. ONNX uses no groups."""
    pos = start
    while pos < end:
        tag, pos = _varint(buf, pos, end)
        number, wire = tag >> 3, tag & 7
        if wire == _VARINT:
            value, pos = _varint(buf, pos, end)
            yield number, wire, value
            continue
        if wire == _LEN:
            length, pos = _varint(buf, pos, end)
            after = pos + length
        elif wire in (_FIXED64, _FIXED32):
            after = pos + (8 if wire == _FIXED64 else 4)
        else:
            raise OnnxReadError(f"field {number} has wire type {wire}, which ONNX does not use")
        if after > end:
            raise OnnxReadError(f"field {number} runs past its message (byte {after} of {end})")
        yield number, wire, (pos, after)
        pos = after


def _text(buf, span) -> str:
    return bytes(buf[span[0]:span[1]]).decode("utf-8", errors="replace")


@dataclass
class _Tensor:
    data_type: int | None = None
    raw: tuple[int, int] | None = None
    int32: list | None = None
    external: bool = False


def _tensor(buf, start: int, end: int) -> tuple[str, _Tensor]:
    name, tensor = "", _Tensor()
    for number, wire, value in _fields(buf, start, end):
        if number == TENSOR_NAME and wire == _LEN:
            name = _text(buf, value)
        elif number == TENSOR_DATA_TYPE and wire == _VARINT:
            tensor.data_type = value
        elif number == TENSOR_RAW_DATA and wire == _LEN:
            tensor.raw = value
        elif number == TENSOR_EXTERNAL_DATA:
            tensor.external = True
        elif number == TENSOR_INT32_DATA:
            tensor.int32 = tensor.int32 or []
            if wire == _VARINT:
                tensor.int32.append(value)
            elif wire == _LEN and value[1] - value[0] <= MAX_ZERO_POINT_BYTES:
                pos = value[0]
                while pos < value[1]:
                    item, pos = _varint(buf, pos, value[1])
                    tensor.int32.append(item)
            else:
                tensor.int32.append(1)  # too large to be a zero point: never "all zero"
    return name, tensor


def _all_zero(buf, tensor: _Tensor) -> bool:
    if tensor.raw is not None:
        start, end = tensor.raw
        if end - start > MAX_ZERO_POINT_BYTES:
            return False
        return not any(bytes(buf[start:end]))
    return not any(tensor.int32 or ())


@dataclass
class _Node:
    op_type: str = ""
    domain: str = ""
    name: str = ""
    inputs: list | None = None
    outputs: list | None = None
    ints: dict | None = None
    strings: dict | None = None
    tensors: dict | None = None


def _node(buf, start: int, end: int, detailed: bool) -> _Node:
    node = _Node(inputs=[], outputs=[])
    attributes = []
    for number, wire, value in _fields(buf, start, end):
        if wire != _LEN:
            continue
        if number == NODE_INPUT:
            node.inputs.append(_text(buf, value))
        elif number == NODE_OUTPUT:
            node.outputs.append(_text(buf, value))
        elif number == NODE_NAME:
            node.name = _text(buf, value)
        elif number == NODE_OP_TYPE:
            node.op_type = _text(buf, value)
        elif number == NODE_DOMAIN:
            node.domain = _text(buf, value)
        elif number == NODE_ATTRIBUTE:
            attributes.append(value)
    if detailed(node):
        node.ints, node.strings, node.tensors = {}, {}, {}
        for span in attributes:
            _attribute(buf, span, node)
    return node


def _attribute(buf, span, node: _Node) -> None:
    name, found = "", {}
    for number, wire, value in _fields(buf, *span):
        if number == ATTR_NAME and wire == _LEN:
            name = _text(buf, value)
        elif number == ATTR_I and wire == _VARINT:
            found["i"] = value
        elif number == ATTR_S and wire == _LEN:
            found["s"] = value
        elif number == ATTR_T and wire == _LEN:
            found["t"] = value
    if "i" in found:
        node.ints[name] = found["i"]
    if "s" in found:
        node.strings[name] = found["s"]
    if "t" in found:
        node.tensors[name] = _tensor(buf, *found["t"])[1]


def _needs_attributes(node: _Node) -> bool:
    return node.op_type in (EP_CONTEXT_OP, "Constant")


def scan_onnx(path: str | Path) -> GraphScan:
    """Scan the main graph of the ONNX model at ``path`` (see :class:`GraphScan`). Raises
    OSError when the file cannot be read and :class:`OnnxReadError` when it is not ONNX."""
    with open(path, "rb") as f:
        size = f.seek(0, 2)
        if size == 0:
            raise OnnxReadError("the file is empty")
        with mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as buf:
            return _scan(buf, size)


def _scan(buf, size: int) -> GraphScan:
    graphs = [value for number, wire, value in _fields(buf, 0, size)
              if number == MODEL_GRAPH and wire == _LEN]
    if len(graphs) != 1:
        raise OnnxReadError(f"it has {len(graphs)} main graphs, not 1")
    nodes: list[_Node] = []
    initializers: dict[str, _Tensor] = {}
    external = False
    for number, wire, value in _fields(buf, *graphs[0]):
        if wire != _LEN:
            continue
        if number == GRAPH_NODE:
            nodes.append(_node(buf, *value, detailed=_needs_attributes))
        elif number == GRAPH_INITIALIZER:
            name, tensor = _tensor(buf, *value)
            initializers[name] = tensor
            external = external or tensor.external
    constants = {node.outputs[0]: node.tensors["value"] for node in nodes
                 if node.op_type == "Constant" and node.outputs and "value" in node.tensors}
    external = external or any(t.external for t in constants.values())
    nonzero, unsigned = [], []
    for node in nodes:
        if node.op_type not in QDQ_OPS or len(node.inputs) < 3 or not node.inputs[2]:
            continue
        label = node.name or (node.outputs[0] if node.outputs else node.op_type)
        zero = initializers.get(node.inputs[2]) or constants.get(node.inputs[2])
        if zero is None or not _all_zero(buf, zero):
            nonzero.append(label)  # a computed zero point counts as not known to be 0
        if zero is not None and zero.data_type == UINT8:
            unsigned.append(label)
    contexts = tuple(
        EpContextNode(
            name=node.name, embed_mode=node.ints.get("embed_mode"),
            cache_context=(_text(buf, node.strings["ep_cache_context"])
                           if node.ints.get("embed_mode") == 0
                           and "ep_cache_context" in node.strings else None),
            hardware_architecture=(_text(buf, node.strings["hardware_architecture"])
                                   if "hardware_architecture" in node.strings else None))
        for node in nodes if node.op_type == EP_CONTEXT_OP)
    return GraphScan(op_types=frozenset(node.op_type for node in nodes), nodes=len(nodes),
                     nonzero_zero_points=tuple(nonzero), unsigned_zero_points=tuple(unsigned),
                     ep_context=contexts, external_data=external)
