"""External data in a bundle's graphs (``edgeser.bundle.onnx_refs``): the protobuf walk that finds
every ``location`` without the onnx package, and the policy ``load`` applies before any ONNX
Runtime session exists (relative, inside the bundle after symlinks, listed and so hash-checked).
Graphs are tiny hand-made ones (``onnx.helper``); tests that build one skip without onnx."""

from __future__ import annotations

import os
import subprocess
import sys
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
from test_bundle import (
    NEEDS_ONNX,
    base_manifest,
    edit_manifest,
    make_bundle,
    reference_arrays,
    rehash_in_manifest,
    tamper_same_size,
    tiny_onnx_bytes,
)

from edgeser import bundle as bundles
from edgeser.bundle import onnx_refs
from edgeser.errors import BundleError
from edgeser.verification import verify

OUTSIDE = "refers to external data outside the bundle"
UNLISTED = "refers to external data not listed in the manifest's files"


@pytest.fixture(autouse=True)
def home(tmp_path, monkeypatch):
    """A private EDGESER_HOME (stamps land there) and an empty per-process scan cache."""
    path = tmp_path / "edgeser-home"
    monkeypatch.setenv("EDGESER_HOME", str(path))
    monkeypatch.setattr(onnx_refs, "_SCANNED", {})
    return path


@pytest.fixture
def onnx():
    return pytest.importorskip("onnx", reason=NEEDS_ONNX)


# ---------------------------------------------------------------- building graphs


def externalize(tensor, location: str) -> bytes:
    """Turn ``tensor`` into one whose data lives at ``location`` (offset 0); its bytes."""
    from onnx import TensorProto, numpy_helper

    data = numpy_helper.to_array(tensor).tobytes()
    for name in ("float_data", "int32_data", "int64_data", "double_data", "raw_data"):
        tensor.ClearField(name)
    del tensor.external_data[:]
    for key, value in (("location", location), ("offset", "0"), ("length", str(len(data)))):
        entry = tensor.external_data.add()
        entry.key, entry.value = key, value
    tensor.data_location = TensorProto.EXTERNAL
    return data


def tiny_model(onnx):
    """The contract graph of tests/test_bundle.py (initializers w1, b1, w2)."""
    return onnx.load_from_string(tiny_onnx_bytes())


def initializer(model, name: str):
    return next(t for t in model.graph.initializer if t.name == name)


def hostile_model(onnx, location: str) -> tuple[bytes, bytes]:
    """The tiny graph with initializer b1 moved to ``location``: (model bytes, b1's bytes)."""
    model = tiny_model(onnx)
    data = externalize(initializer(model, "b1"), location)
    return model.SerializeToString(), data


def with_if_subgraph(onnx, location: str) -> bytes:
    """The tiny graph plus an If node whose then_branch holds an initializer at ``location``."""
    from onnx import TensorProto, helper

    model = tiny_model(onnx)
    hidden = helper.make_tensor("hidden", TensorProto.FLOAT, [2], [1.0, 2.0])
    externalize(hidden, location)
    out = helper.make_tensor_value_info("branch_out", TensorProto.FLOAT, [2])
    then_branch = helper.make_graph([helper.make_node("Identity", ["hidden"], ["branch_out"])],
                                    "then", [], [out], initializer=[hidden])
    else_out = helper.make_tensor_value_info("else_out", TensorProto.FLOAT, [2])
    else_branch = helper.make_graph(
        [helper.make_node("Constant", [], ["else_out"], value_floats=[0.0, 0.0])],
        "else", [], [else_out],
    )
    cond = helper.make_tensor("cond", TensorProto.BOOL, [], [True])
    model.graph.initializer.append(cond)
    model.graph.node.append(helper.make_node("If", ["cond"], ["unused"],
                                             then_branch=then_branch, else_branch=else_branch))
    return model.SerializeToString()


def replace_graph(dest: Path, model: bytes) -> None:
    (dest / "model.onnx").write_bytes(model)
    rehash_in_manifest(dest, "model.onnx")


def hostile_bundle(tmp_path: Path, onnx, location: str) -> Path:
    """A valid bundle whose model.onnx (re-hashed, so every other check passes) takes b1 from
    ``location``; tmp_path/outside.bin holds b1's true bytes, so a runtime that followed the
    reference would work and leak the file."""
    dest = tmp_path / "bundle"
    make_bundle(dest, real_graph=True)
    model, data = hostile_model(onnx, location)
    (tmp_path / "outside.bin").write_bytes(data)
    replace_graph(dest, model)
    return dest


def refuse_sessions(monkeypatch) -> list:
    """Make every ONNX Runtime session creation fail the test (and record it)."""
    ort = pytest.importorskip("onnxruntime")
    calls: list = []

    def refused(*args, **kwargs):
        calls.append(args)
        raise AssertionError("an ONNX Runtime session was created for a hostile bundle")

    monkeypatch.setattr(ort, "InferenceSession", refused)
    return calls


_OPENED: list[str] | None = None


def _audit(event: str, args: tuple) -> None:
    if _OPENED is not None and event == "open" and args and isinstance(args[0], (str, bytes)):
        _OPENED.append(os.fsdecode(args[0]))


sys.addaudithook(_audit)  # inert unless a test sets _OPENED


def opened_during(call) -> tuple[list[str], BaseException | None]:
    """The paths Python opened while ``call()`` ran, and the exception it raised (or None)."""
    global _OPENED
    _OPENED = []
    try:
        call()
        raised = None
    except BaseException as err:  # noqa: BLE001 (handed back to the test)
        raised = err
    finally:
        seen, _OPENED = _OPENED, None
    return seen, raised


# ---------------------------------------------------------------- field numbers


def tensor_paths(onnx) -> dict[tuple[str, str], int]:
    """``{(message, field): number}`` for every message field on a path from ModelProto to a
    TensorProto, computed from the installed onnx package's descriptors."""
    types: dict[str, object] = {}
    todo = [onnx.ModelProto.DESCRIPTOR]
    while todo:
        desc = todo.pop()
        if desc.full_name in types:
            continue
        types[desc.full_name] = desc
        todo.extend(f.message_type for f in desc.fields if f.message_type is not None)
    reaches = {onnx.TensorProto.DESCRIPTOR.full_name}
    grew = True
    while grew:
        grew = False
        for name, desc in types.items():
            if name not in reaches and any(
                f.message_type is not None and f.message_type.full_name in reaches
                for f in desc.fields
            ):
                reaches.add(name)
                grew = True
    return {
        (desc.name, f.name): f.number
        for name, desc in types.items() if name in reaches
        for f in desc.fields
        if f.message_type is not None and f.message_type.full_name in reaches
    }


def test_field_numbers_are_those_of_the_installed_onnx_proto(onnx):
    r = onnx_refs
    assert tensor_paths(onnx) == {
        ("ModelProto", "graph"): r.MODEL_GRAPH,
        ("ModelProto", "training_info"): r.MODEL_TRAINING_INFO,
        ("ModelProto", "functions"): r.MODEL_FUNCTIONS,
        ("TrainingInfoProto", "initialization"): r.TRAINING_INITIALIZATION,
        ("TrainingInfoProto", "algorithm"): r.TRAINING_ALGORITHM,
        ("GraphProto", "node"): r.GRAPH_NODE,
        ("GraphProto", "initializer"): r.GRAPH_INITIALIZER,
        ("GraphProto", "sparse_initializer"): r.GRAPH_SPARSE_INITIALIZER,
        ("NodeProto", "attribute"): r.NODE_ATTRIBUTE,
        ("FunctionProto", "node"): r.FUNCTION_NODE,
        ("FunctionProto", "attribute_proto"): r.FUNCTION_ATTRIBUTE_PROTO,
        ("AttributeProto", "t"): r.ATTRIBUTE_T,
        ("AttributeProto", "g"): r.ATTRIBUTE_G,
        ("AttributeProto", "tensors"): r.ATTRIBUTE_TENSORS,
        ("AttributeProto", "graphs"): r.ATTRIBUTE_GRAPHS,
        ("AttributeProto", "sparse_tensor"): r.ATTRIBUTE_SPARSE_TENSOR,
        ("AttributeProto", "sparse_tensors"): r.ATTRIBUTE_SPARSE_TENSORS,
        ("SparseTensorProto", "values"): r.SPARSE_VALUES,
        ("SparseTensorProto", "indices"): r.SPARSE_INDICES,
    }, "onnx.proto gained or moved a path to a TensorProto: update edgeser/bundle/onnx_refs.py"
    tensor = onnx.TensorProto.DESCRIPTOR.fields_by_name
    assert tensor["external_data"].number == r.TENSOR_EXTERNAL_DATA
    assert tensor["external_data"].message_type.name == "StringStringEntryProto"
    assert tensor["data_location"].number == r.TENSOR_DATA_LOCATION
    assert onnx.TensorProto.EXTERNAL == r.DATA_LOCATION_EXTERNAL
    entry = onnx.StringStringEntryProto.DESCRIPTOR.fields_by_name
    assert (entry["key"].number, entry["value"].number) == (r.ENTRY_KEY, r.ENTRY_VALUE)
    # the walk's table follows the constants: per message, exactly the fields listed above
    kinds = {"ModelProto": r._MODEL, "TrainingInfoProto": r._TRAINING, "GraphProto": r._GRAPH,
             "NodeProto": r._NODE, "FunctionProto": r._FUNCTION, "AttributeProto": r._ATTRIBUTE,
             "SparseTensorProto": r._SPARSE}
    for message, kind in kinds.items():
        numbers = {n for (m, _), n in tensor_paths(onnx).items() if m == message}
        assert set(r._CHILDREN[kind]) == numbers, message
    assert r._CHILDREN[r._TENSOR] == {r.TENSOR_EXTERNAL_DATA: r._ENTRY}


# ---------------------------------------------------------------- the walk


def everywhere_model(onnx):
    """A model with an external tensor on every path the walk knows; {location: where}."""
    from onnx import TensorProto, helper

    def t(name, loc):
        tensor = helper.make_tensor(name, TensorProto.FLOAT, [2], [1.0, 2.0])
        externalize(tensor, loc)
        return tensor

    def sparse(name, loc_values, loc_indices):
        values = t(name, loc_values)
        indices = helper.make_tensor(name + "_i", TensorProto.INT64, [2], [0, 1])
        externalize(indices, loc_indices)
        return helper.make_sparse_tensor(values, indices, [4])

    model = tiny_model(onnx)
    externalize(initializer(model, "w1"), "init.bin")
    model.graph.sparse_initializer.append(sparse("sp", "sparse_values.bin", "sparse_indices.bin"))
    model.graph.node.append(helper.make_node("Constant", [], ["c"], value=t("c", "attr_t.bin")))
    sub = helper.make_graph([], "sub", [], [], initializer=[t("s", "deep.bin")])
    middle = helper.make_graph(
        [helper.make_node("Custom", [], [], domain="x", g=sub)], "middle", [], [],
        initializer=[t("m", "subgraph_init.bin")],
    )
    custom = helper.make_node("Custom", [], [], domain="x")
    custom.attribute.extend([
        helper.make_attribute("tensors",
                              [t("a", "attr_tensors_1.bin"), t("b", "attr_tensors_2.bin")]),
        helper.make_attribute("graphs", [middle]),
        helper.make_attribute("sp", sparse("sa", "attr_sparse.bin", "attr_sparse_i.bin")),
    ])
    model.graph.node.append(custom)
    fn_node = helper.make_node("Constant", [], ["k"], value=t("k", "function_node.bin"))
    function = helper.make_function("x", "fn", [], ["k"], [fn_node], [helper.make_opsetid("", 17)])
    function.attribute_proto.append(helper.make_attribute("default", t("d", "function_attr.bin")))
    model.functions.append(function)
    training = onnx.TrainingInfoProto()
    training.initialization.CopyFrom(helper.make_graph([], "init", [], [],
                                                       initializer=[t("ti", "training.bin")]))
    model.training_info.append(training)
    return model


def locations_by_onnx(message) -> list[str]:
    """Every external-data location in a parsed message, by a generic walk over all fields."""
    from google.protobuf.message import Message

    found: list[str] = []
    todo = [message]
    while todo:
        msg = todo.pop()
        if msg.DESCRIPTOR.name == "TensorProto":
            for entry in msg.external_data:
                if entry.key in ("location", b"location"):  # bytes when not valid UTF-8
                    value = entry.value
                    if isinstance(value, bytes):
                        value = value.decode("utf-8", "surrogateescape")
                    found.append(value)
        for field, value in msg.ListFields():
            if field.message_type is not None:
                todo.extend([value] if isinstance(value, Message) else value)
    return found


def test_the_walk_finds_three_external_tensors_written_by_onnx(tmp_path, onnx):
    from onnx import numpy_helper

    model = tiny_model(onnx)
    for tensor in model.graph.initializer:  # onnx moves out only tensors kept as raw_data
        tensor.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(tensor), tensor.name))
    onnx.save_model(model, tmp_path / "model.onnx", save_as_external_data=True,
                    all_tensors_to_one_file=False, size_threshold=0)
    found = onnx_refs.external_data_locations(tmp_path / "model.onnx")
    assert sorted(found) == ["b1", "w1", "w2"]  # onnx names each file after its tensor
    assert sorted(found) == sorted(p.name for p in tmp_path.iterdir() if p.name != "model.onnx")


def test_the_walk_finds_external_tensors_on_every_path(tmp_path, onnx):
    model = everywhere_model(onnx)
    (tmp_path / "model.onnx").write_bytes(model.SerializeToString())
    found = onnx_refs.external_data_locations(tmp_path / "model.onnx")
    expected = ["init.bin", "sparse_values.bin", "sparse_indices.bin", "attr_t.bin", "deep.bin",
                "subgraph_init.bin", "attr_tensors_1.bin", "attr_tensors_2.bin",
                "attr_sparse.bin", "attr_sparse_i.bin", "function_node.bin", "function_attr.bin",
                "training.bin"]
    assert sorted(found) == sorted(expected)
    assert sorted(locations_by_onnx(model)) == sorted(expected)  # the reference walk agrees


def test_an_ordinary_model_has_no_external_data(tmp_path, onnx):
    (tmp_path / "model.onnx").write_bytes(tiny_onnx_bytes())
    assert onnx_refs.external_data_locations(tmp_path / "model.onnx") == []
    (tmp_path / "empty.onnx").write_bytes(b"")
    assert onnx_refs.external_data_locations(tmp_path / "empty.onnx") == []


def test_a_location_counts_whatever_data_location_says(tmp_path, onnx):
    model = tiny_model(onnx)
    externalize(initializer(model, "b1"), "../sneaky.bin")
    initializer(model, "b1").data_location = onnx.TensorProto.DEFAULT
    (tmp_path / "model.onnx").write_bytes(model.SerializeToString())
    assert onnx_refs.external_data_locations(tmp_path / "model.onnx") == ["../sneaky.bin"]


def test_a_large_initializer_is_skipped_not_read(tmp_path, onnx):
    from onnx import numpy_helper

    model = tiny_model(onnx)
    big = numpy_helper.from_array(np.zeros(50 * 1024 * 1024 // 4, dtype=np.float32), "big")
    model.graph.initializer.append(big)
    externalize(initializer(model, "b1"), "after_the_big_one.bin")
    path = tmp_path / "model.onnx"
    path.write_bytes(model.SerializeToString())
    del model, big
    assert path.stat().st_size > 50 * 1024 * 1024
    tracemalloc.start()
    try:
        found = onnx_refs.external_data_locations(path)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert found == ["after_the_big_one.bin"]
    assert peak < 1024 * 1024, f"the walk allocated {peak} bytes"


@pytest.mark.parametrize("data, why", [
    (b"\x80", "truncated varint"),
    (b"\x3a\x05ab", "runs past the end"),  # graph (7), 5 bytes announced, 2 present
    (b"\x3a\x03\x2a\x05a", "runs past the end"),  # initializer longer than its graph
    (b"\x3a\x02\x2a\x80", "truncated varint"),  # a length cut off at the graph's end
    (b"\x0e", "invalid wire type 6"),
    (b"\x00", "field number 0"),
    (b"\x0b\x10\x01", "truncated varint"),  # a group (field 1) that never ends
    (b"\x0b\x14", "mismatched end of group"),
    (b"\x0c", "end of a group that never began"),
    (b"\x08" + b"\xff" * 11, "varint longer than 10 bytes"),
])
def test_malformed_bytes_are_one_bundle_error(tmp_path, data, why):
    path = tmp_path / "model.onnx"
    path.write_bytes(data)
    with pytest.raises(BundleError, match=why) as info:
        onnx_refs.external_data_locations(path)
    message = str(info.value)
    assert message.startswith(f"model bundle {tmp_path}: model.onnx is not a valid ONNX model")
    assert message.endswith(").") and "\n" not in message
    # load() leaves such bytes to ONNX Runtime: protobuf refuses every one of them too
    google = pytest.importorskip("google.protobuf.message")
    onnx_mod = pytest.importorskip("onnx", reason=NEEDS_ONNX)
    with pytest.raises(google.DecodeError):
        onnx_mod.ModelProto().ParseFromString(data)


def test_the_walk_agrees_with_protobuf_on_damaged_models(tmp_path, onnx):
    """Where protobuf parses damaged bytes, the walk does not call them malformed and finds (at
    least) every location protobuf sees; so bytes the walk calls malformed, protobuf refuses."""
    from google.protobuf.message import DecodeError

    good = everywhere_model(onnx).SerializeToString()
    rng = np.random.default_rng(7)
    path = tmp_path / "model.onnx"
    parsed = refused = 0
    for _ in range(400):
        data = bytearray(good)
        if rng.random() < 0.2:
            data = data[: rng.integers(1, len(data))]
        for _ in range(rng.integers(1, 4)):
            data[rng.integers(len(data))] = rng.integers(256)
        path.write_bytes(bytes(data))
        try:
            found = onnx_refs.external_data_locations(path)
        except BundleError:
            found = None
        try:
            message = onnx.ModelProto()
            message.ParseFromString(bytes(data))
        except DecodeError:  # the walk may accept these: it skips fields it does not need
            refused += 1
            continue
        parsed += 1
        assert found is not None, bytes(data)
        assert set(locations_by_onnx(message)) <= set(found)
    assert parsed > 20 and refused > 20


# ---------------------------------------------------------------- the policy in load()


@pytest.mark.parametrize("location", [
    "../outside.bin", "sub/../../outside.bin", "/etc/passwd", "OUTSIDE_ABSOLUTE",
])
def test_a_location_outside_the_bundle_is_refused_before_any_session(
    tmp_path, onnx, monkeypatch, location
):
    if location == "OUTSIDE_ABSOLUTE":
        location = str(tmp_path / "outside.bin")
    dest = hostile_bundle(tmp_path, onnx, location)
    sessions = refuse_sessions(monkeypatch)
    with pytest.raises(BundleError) as info:
        bundles.load(dest)
    assert str(info.value) == f"model bundle {dest}: model.onnx {OUTSIDE} ({location!r})."
    with pytest.raises(BundleError, match=OUTSIDE):
        verify(dest)  # verify makes a session after load: never reached
    assert sessions == []


def test_the_outside_file_is_never_opened(tmp_path, onnx, monkeypatch):
    dest = hostile_bundle(tmp_path, onnx, "../outside.bin")
    refuse_sessions(monkeypatch)
    opened, raised = opened_during(lambda: verify(dest))
    assert isinstance(raised, BundleError) and OUTSIDE in str(raised)
    outside = str(tmp_path / "outside.bin")
    assert not any(os.path.abspath(p) == outside or p.endswith("outside.bin") for p in opened)
    assert any(p.endswith("model.onnx") for p in opened)  # the hook does see the opens


def test_a_symlink_inside_the_bundle_pointing_outside_is_refused(tmp_path, onnx):
    dest = hostile_bundle(tmp_path, onnx, "link.bin")
    (dest / "link.bin").symlink_to(tmp_path / "outside.bin")
    with pytest.raises(BundleError, match=rf"model.onnx {OUTSIDE} \('link.bin'\)\.$"):
        bundles.load(dest)
    rehash_in_manifest(dest, "link.bin")  # listing it does not help: load refuses the name itself
    with pytest.raises(BundleError, match="link.bin resolves outside the bundle"):
        bundles.load(dest)


def test_a_directory_symlink_pointing_outside_is_refused(tmp_path, onnx):
    dest = hostile_bundle(tmp_path, onnx, "data/outside.bin")
    (dest / "data").symlink_to(tmp_path, target_is_directory=True)
    with pytest.raises(BundleError, match=rf"{OUTSIDE} \('data/outside.bin'\)"):
        bundles.load(dest)


def test_an_initializer_of_a_nested_subgraph_is_checked(tmp_path, onnx, monkeypatch):
    dest = tmp_path / "bundle"
    make_bundle(dest, real_graph=True)
    replace_graph(dest, with_if_subgraph(onnx, "../../etc/passwd"))
    sessions = refuse_sessions(monkeypatch)
    with pytest.raises(BundleError) as info:
        bundles.load(dest)
    assert str(info.value) == f"model bundle {dest}: model.onnx {OUTSIDE} ('../../etc/passwd')."
    assert sessions == []


def test_a_location_not_listed_in_files_is_refused(tmp_path, onnx):
    dest = tmp_path / "bundle"
    make_bundle(dest, real_graph=True)
    model, data = hostile_model(onnx, "weights.bin")
    (dest / "weights.bin").write_bytes(data)
    replace_graph(dest, model)
    with pytest.raises(BundleError) as info:
        bundles.load(dest)
    assert str(info.value) == f"model bundle {dest}: model.onnx {UNLISTED} ('weights.bin')."


@pytest.mark.parametrize("location", [
    "C:\\weights.bin", "C:weights.bin", "\\\\server\\share\\weights.bin",
    "//server/share/weights.bin", "sub\\..\\..\\weights.bin", "weights.bin\x00.txt",
])
def test_drive_unc_backslash_and_nul_locations_are_refused(tmp_path, onnx, location):
    model, _ = hostile_model(onnx, location)
    (tmp_path / "model.onnx").write_bytes(model)
    with pytest.raises(BundleError, match=OUTSIDE):
        onnx_refs.check_external_data(tmp_path, "model.onnx", {"weights.bin": {}})


def test_an_empty_location_is_refused(tmp_path, onnx):
    model, _ = hostile_model(onnx, "")
    (tmp_path / "model.onnx").write_bytes(model)
    with pytest.raises(BundleError, match=r"model.onnx refers to external data with an empty "
                                          r"location \(''\)\.$"):
        onnx_refs.check_external_data(tmp_path, "model.onnx", {})


def test_listed_external_data_inside_the_bundle_loads_runs_and_is_hash_checked(tmp_path, onnx):
    dest = tmp_path / "bundle"
    make_bundle(dest, real_graph=True)
    model, data = hostile_model(onnx, "./weights.bin")  # "./" is harmless: the name is normalised
    (dest / "weights.bin").write_bytes(data)
    rehash_in_manifest(dest, "weights.bin")
    replace_graph(dest, model)
    bundles.load(dest)
    report = verify(dest)  # ONNX Runtime reads b1 from weights.bin and reproduces outputs
    assert report.ok, report.problems
    tamper_same_size(dest / "weights.bin")
    with pytest.raises(BundleError, match="weights.bin: sha256 mismatch"):
        bundles.load(dest, rehash=True)


def test_locations_are_relative_to_the_graphs_directory(tmp_path, onnx):
    """ONNX Runtime joins a location to the graph's own directory: graphs/model.onnx naming
    w.bin reads graphs/w.bin, and that is the name that must be listed."""
    model, data = hostile_model(onnx, "w.bin")
    manifest = base_manifest()
    manifest["graphs"][0]["file"] = "graphs/model.onnx"
    dest = tmp_path / "bundle"
    with bundles.stage_bundle(dest) as stage:
        (stage.path / "graphs").mkdir()
        (stage.path / "graphs" / "model.onnx").write_bytes(model)
        (stage.path / "graphs" / "w.bin").write_bytes(data)
        np.savez(stage.path / "reference.npz", **reference_arrays(tiny_onnx_bytes()))
        stage.commit(manifest)
    assert verify(dest).ok
    os.replace(dest / "graphs" / "w.bin", dest / "w.bin")  # listed at the root instead
    edit_manifest(dest, lambda m: m["files"].__setitem__("w.bin", m["files"].pop("graphs/w.bin")))
    with pytest.raises(BundleError, match=rf"graphs/model.onnx {UNLISTED} \('w.bin'\)"):
        bundles.load(dest)


def test_the_scan_runs_once_per_graph_version_but_the_policy_every_load(
    tmp_path, onnx, monkeypatch
):
    dest = tmp_path / "bundle"
    make_bundle(dest, real_graph=True)
    model, data = hostile_model(onnx, "weights.bin")
    (dest / "weights.bin").write_bytes(data)
    rehash_in_manifest(dest, "weights.bin")
    replace_graph(dest, model)
    scans: list[Path] = []
    real_scan = onnx_refs._scan

    def counting(path, root):
        scans.append(path)
        return real_scan(path, root)

    monkeypatch.setattr(onnx_refs, "_scan", counting)
    bundles.load(dest)
    bundles.load(dest)
    assert len(scans) == 1
    # the manifest alone changes: the cached scan still meets the current policy
    edit_manifest(dest, lambda m: m["files"].pop("weights.bin"))
    with pytest.raises(BundleError, match=UNLISTED):
        bundles.load(dest)
    assert len(scans) == 1
    # a new version of the graph is scanned again
    st = (dest / "model.onnx").stat()
    os.utime(dest / "model.onnx", ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))
    with pytest.raises(BundleError, match=UNLISTED):
        bundles.load(dest)
    assert len(scans) == 2


def test_a_graph_that_is_not_protobuf_is_left_to_onnx_runtime(tmp_path):
    dest = tmp_path / "bundle"
    make_bundle(dest)  # placeholder bytes, correctly hashed
    with pytest.raises(BundleError, match="is not a valid ONNX model"):
        onnx_refs.external_data_locations(dest / "model.onnx", bundle_root=dest)
    bundles.load(dest)  # as before: ONNX Runtime refuses it when a session is made
    with pytest.raises(BundleError, match="ONNX Runtime cannot load model.onnx"):
        verify(dest)


def test_edgeser_detect_refuses_a_hostile_bundle_in_one_sentence(tmp_path, onnx, home):
    sf = pytest.importorskip("soundfile")
    dest = hostile_bundle(tmp_path, onnx, "../outside.bin")
    wav = tmp_path / "clip.wav"
    sf.write(wav, 0.1 * np.random.default_rng(0).standard_normal(16000), 16000)
    env = {k: v for k, v in os.environ.items() if not k.startswith("HF_")}
    env["EDGESER_HOME"] = str(home)
    result = subprocess.run(
        [sys.executable, "-m", "edgeser", "detect", "-m", str(dest), str(wav)],
        capture_output=True, text=True, timeout=120, env=env, stdin=subprocess.DEVNULL,
    )
    assert result.returncode == 1, (result.stdout, result.stderr)
    assert "Traceback" not in result.stderr
    assert result.stdout == ""
    assert result.stderr.strip() == (
        f"edgeser: model bundle {dest}: model.onnx {OUTSIDE} ('../outside.bin')."
    )
