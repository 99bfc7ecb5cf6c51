"""Detection as a service: ``edgeser serve`` and its Python client.

- :mod:`edgeser.serve.protocol`: the wire protocol (version 1), specified in its docstring;
- :mod:`edgeser.serve.server`: connections, stream workers, drain and reload;
- :mod:`edgeser.serve.transport`: unix/TCP listeners (stale and live sockets) and transports;
- :mod:`edgeser.serve.queues`: the bounded queues and the overflow policies;
- :mod:`edgeser.serve.batching`: the scheduler that batches windows across streams;
- :mod:`edgeser.serve.models`: the shared detector and per-stream settings;
- :mod:`edgeser.serve.metrics`: counters and latency for the ``health`` record;
- :mod:`edgeser.serve.systemd`: READY/WATCHDOG notifications (the ``serve`` extra);
- :mod:`edgeser.serve.client`: a small client (numpy and the standard library).

Importing this package imports nothing heavy; the client does not load the model runtime.
"""

from edgeser.serve.protocol import PROTOCOL_VERSION

__all__ = ["PROTOCOL_VERSION"]
