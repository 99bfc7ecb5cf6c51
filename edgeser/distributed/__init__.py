"""Archive-scale detection on a Ray cluster: the same bundle, the same records as ``detect``.

::

    import ray
    import edgeser.distributed as ed

    ray.init(address="auto")
    ds = ed.detect("/archive/calls", "bundles/msp-dim", actors=8)   # a Ray Dataset of results
    summary = ed.write("/archive/calls", "results/", model="bundles/msp-dim", fmt="parquet")

Ray is imported when a run starts (``pip install "edgeser[ray]"``), never by ``import edgeser``.
"""

from edgeser.distributed.run import DistributedError, RunSummary, connect, detect, write

__all__ = ["DistributedError", "RunSummary", "connect", "detect", "write"]
