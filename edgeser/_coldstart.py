"""Cold start of a detection session, timed in a fresh interpreter (run by ``edgeser.bench``).

Argument: one JSON object with ``bundle``, ``graph`` (the ONNX file to run: a TensorRT engine's
context model, or null for the bundle's graph), ``providers``, ``provider_options``, ``threads``
and ``window_s``. Prints one JSON line: seconds for imports, session creation and the first
inference, and resident memory (MB) after imports, after session creation and at peak. Imports
are what a service needs to run a bundle: ONNX Runtime, NumPy and edgeser's runtime (detector,
frontend, decoder).
"""

import json
import sys
import time
from edgeser.contract import SAMPLE_RATE_HZ


def main() -> None:
    request = json.loads(sys.argv[1])
    start = time.perf_counter()
    import numpy as np
    import onnxruntime  # noqa: F401  (imported by the session; timed with the rest)

    from edgeser import bundle as bundles
    from edgeser.detector import Detector  # noqa: F401  (the whole runtime a service imports)
    from edgeser.inference import Session, SessionSettings
    from edgeser.memory import peak_rss_mb, rss_mb

    imports_s = time.perf_counter() - start
    rss_imports = rss_mb()
    start = time.perf_counter()
    session = Session(bundles.load(request["bundle"]), SessionSettings(
        threads=request["threads"], providers=tuple(request["providers"]),
        provider_options=tuple(request["provider_options"])),
        graph=request.get("graph"))  # a TensorRT engine's context model, else the ONNX graph
    session_s = time.perf_counter() - start
    rss_session = rss_mb()
    x = np.random.default_rng(0).standard_normal(
        (1, int(round(request["window_s"] * SAMPLE_RATE_HZ)))).astype(np.float32)
    start = time.perf_counter()
    session.run(x)
    first_s = time.perf_counter() - start
    print(json.dumps({"imports_s": imports_s, "session_s": session_s, "first_inference_s": first_s,
                      "rss_after_imports_mb": rss_imports, "rss_after_session_mb": rss_session,
                      "peak_rss_mb": peak_rss_mb()}))


if __name__ == "__main__":
    main()
