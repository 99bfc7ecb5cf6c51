"""The model bundle: a directory holding everything a device needs to run one model.

Layout: ``manifest.json`` (schema below, :data:`SCHEMA_VERSION`), the ONNX graph(s) it lists under
``"graphs"`` (normally one ``model.onnx`` with role ``"full"``), ``reference.npz`` (reference input
windows and their expected outputs, for :func:`edgeser.verification.verify`) and possibly other
files. The manifest's
``"files"`` maps every other file, by relative POSIX name, to its sha256 and size.

Conventions:

- Reading: :func:`load` validates the manifest (:func:`validate_manifest` collects every problem
  before anything is raised), refuses names that are absolute or escape the bundle (``..``, or a
  symlink resolving outside it), checks sizes and sha256 hashes, and refuses graphs whose
  external data lies outside the bundle or is not listed. The full hash pass runs once;
  a *stamp* keyed by each file's size, mtime and inode (under :func:`edgeser_home`) lets later
  loads skip it. ``load(..., rehash=True)`` always rehashes (``edgeser verify`` uses it).
- Writing: :func:`stage_bundle` hands out a temporary directory beside the destination; its
  :meth:`BundleStage.commit` hashes the files, validates the manifest, writes and fsyncs it, then
  publishes with one ``rename``. Nothing is published when the manifest is invalid or the block
  raises, so a reader never sees a half-written bundle.
- Every failure is a :class:`~edgeser.errors.BundleError` whose message is one sentence naming the
  bundle directory and the problem(s). This package never prints.
- The manifest is typed (:class:`Manifest`, frozen dataclasses, ``from_json``/``to_json``); the
  contract's constants live in :mod:`edgeser.contract`. Runtime only: numpy and the standard
  library (no ONNX Runtime: running a bundle is :mod:`edgeser.inference`, checking one on this
  device :mod:`edgeser.verification`).

Modules, one concern each (this package re-exports their public names):

- :mod:`~edgeser.bundle.schema`: the JSON schema, :func:`validate_manifest`, :func:`upgrade` of
  schema-1 manifests.
- :mod:`~edgeser.bundle.manifest`: :class:`Manifest` and its parts, :class:`Bundle`.
- :mod:`~edgeser.bundle.locations`: :func:`edgeser_home`, :func:`default_bundle_dir`.
- :mod:`~edgeser.bundle.hashing`: file hashes and the stamp that lets loads skip them.
- :mod:`~edgeser.bundle.loading`: :func:`load`.
- :mod:`~edgeser.bundle.onnx_refs`: ONNX external-data references (read from the protobuf wire
  format; no ``onnx`` package) and the policy that keeps them inside the bundle (used by
  :func:`load`; not re-exported).
- :mod:`~edgeser.bundle.staging`: :func:`stage_bundle`, :class:`BundleStage`, atomic publishing.
- :mod:`~edgeser.bundle.operating_points`: :func:`write_operating_points` into an existing
  laughter bundle (the manifest alone is rewritten, atomically; the hashes stay valid).
"""

from __future__ import annotations

from edgeser.bundle.locations import default_bundle_dir, edgeser_home
from edgeser.bundle.manifest import (
    Bundle,
    Embedding,
    FidelityGate,
    FileEntry,
    Graph,
    Logits,
    Manifest,
    Normalization,
    OperatingPointOrigin,
    Prototypes,
    Pruning,
    Quantization,
    ReferenceWindows,
    Source,
    VoiceActivityGate,
    WeightHash,
)
from edgeser.bundle.schema import (
    FORMAT,
    MANIFEST,
    PRECISIONS,
    SCHEMA_VERSION,
    SOURCE_KINDS,
    _name_problem,  # noqa: F401  (read by tests/test_tensorrt.py)
    upgrade,
    validate_manifest,
)
from edgeser.bundle.loading import load
from edgeser.bundle.operating_points import write_operating_points
from edgeser.bundle.staging import BundleStage, stage_bundle
from edgeser.errors import BundleError

__all__ = [
    "FORMAT",
    "MANIFEST",
    "PRECISIONS",
    "SCHEMA_VERSION",
    "SOURCE_KINDS",
    "Bundle",
    "BundleError",
    "BundleStage",
    "Embedding",
    "FidelityGate",
    "FileEntry",
    "Graph",
    "Logits",
    "Manifest",
    "Normalization",
    "OperatingPointOrigin",
    "Prototypes",
    "Pruning",
    "Quantization",
    "ReferenceWindows",
    "Source",
    "VoiceActivityGate",
    "WeightHash",
    "default_bundle_dir",
    "edgeser_home",
    "load",
    "stage_bundle",
    "upgrade",
    "validate_manifest",
    "write_operating_points",
]
