"""``edgeser serve``: detection as a service on a unix socket, TCP or stdin/stdout."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Optional

import typer

from edgeser.cli import _options as opt
from edgeser.serve import protocol as P


def serve(
    model: Optional[str] = typer.Option(None, "--model", "-m", help="Bundle directory (or a "
                                        "checkpoint or hub id already exported) [default: the "
                                        "default model's bundle]."),
    socket_path: Optional[Path] = typer.Option(None, "--socket", help="Listen on this unix "
                                               "socket (a stale socket file is replaced, a live "
                                               "one never)."),
    socket_mode: str = typer.Option("0660", "--socket-mode", help="Permissions of the unix "
                                    "socket, octal."),
    tcp: Optional[str] = typer.Option(None, "--tcp", help="Listen on TCP: PORT (loopback), or "
                                      "HOST:PORT (any address, given explicitly)."),
    stdio: bool = typer.Option(False, "--stdio", help="Serve one client on stdin/stdout "
                               "(logs on stderr)."),
    window: opt.Window = None,
    hop: opt.Hop = None,
    threshold: opt.Threshold = None,
    operating_point: opt.OperatingPoint = None,
    min_duration: opt.MinDuration = 0.0,
    release: opt.Release = None,
    merge_gap: opt.MergeGap = 0.5,
    silence: opt.Silence = None,
    vad: opt.Vad = None,
    min_speech: opt.MinSpeech = None,
    denoise: opt.Denoise = None,
    threads: opt.Threads = None,
    device: opt.Device = None,
    fallback: opt.Fallback = False,
    batch_size: int = typer.Option(8, "--batch-size", min=1, help="Most windows per inference "
                                   "call, across streams."),
    batch_wait_ms: float = typer.Option(5.0, "--batch-wait-ms", min=0, help="Longest wait for "
                                        "windows of other busy streams to join a batch."),
    overflow: str = typer.Option("block", "--overflow", help="When a stream's queue is full: "
                                 "block (stop reading from that client) or drop (discard its "
                                 "oldest queued audio, counted); a stream may choose."),
    queue_bytes: int = typer.Option(P.DEFAULT_QUEUE_BYTES, "--queue-bytes", min=1,
                                    help="Audio queued per stream, at most."),
    out_queue_bytes: int = typer.Option(P.DEFAULT_OUT_QUEUE_BYTES, "--out-queue-bytes", min=1,
                                        help="Records queued per client, at most."),
    max_line: int = typer.Option(P.DEFAULT_MAX_LINE_BYTES, "--max-line", min=64,
                                 help="Longest message line in bytes."),
    max_frame: int = typer.Option(P.DEFAULT_MAX_FRAME_BYTES, "--max-frame", min=1,
                                  help="Largest audio frame in bytes."),
    max_streams: int = typer.Option(P.DEFAULT_MAX_STREAMS, "--max-streams", min=1,
                                    help="Open streams in all, at most."),
    max_streams_per_client: int = typer.Option(P.DEFAULT_MAX_STREAMS_PER_CLIENT,
                                               "--max-streams-per-client", min=1,
                                               help="Open streams per client, at most."),
    max_clients: int = typer.Option(P.DEFAULT_MAX_CLIENTS, "--max-clients", min=1,
                                    help="Connected clients, at most."),
    client_timeout: float = typer.Option(P.DEFAULT_CLIENT_TIMEOUT_S, "--client-timeout",
                                         min=0.1, help="Disconnect a client that reads none of "
                                         "its results for this many seconds."),
    drain_timeout: float = typer.Option(30.0, "--drain-timeout", min=0, help="On SIGTERM, "
                                        "wait this long for open streams to get their last "
                                        "results."),
) -> None:
    """Serve detection to clients: open streams, push PCM, get JSON-lines results.

    The protocol (JSON lines, binary audio frames) is described in the README and in
    edgeser.serve.protocol. SIGTERM drains the open streams and exits 0; SIGHUP reloads the
    bundle (new streams use it). Under systemd (NOTIFY_SOCKET) it reports READY=1 and
    WATCHDOG=1 (needs pip install 'edgeser[serve]').
    """
    import signal

    from edgeser.cli import _model
    from edgeser.detector import DetectionOptions
    from edgeser.errors import EdgeserError
    from edgeser.serve.server import Server, ServeOptions, parse_tcp
    from edgeser.serve.systemd import Notifier, NotifierMissing

    if not (socket_path or tcp or stdio):
        raise typer.BadParameter("say where to serve: --socket PATH, --tcp [HOST:]PORT or "
                                 "--stdio.")
    if stdio and (socket_path or tcp):
        raise typer.BadParameter("--stdio serves one client on stdin/stdout; drop --socket and "
                                 "--tcp.", param_hint="--stdio")
    try:
        mode = int(socket_mode, 8)
        if not 0 <= mode <= 0o777:
            raise ValueError
    except ValueError:
        raise typer.BadParameter(f"{socket_mode!r} is not an octal mode such as 0660.",
                                 param_hint="--socket-mode") from None
    try:
        address = parse_tcp(tcp) if tcp is not None else None
    except ValueError as err:
        raise typer.BadParameter(str(err), param_hint="--tcp") from None
    if overflow not in P.OVERFLOW_POLICIES:
        raise typer.BadParameter(f"{overflow!r} is not one of {', '.join(P.OVERFLOW_POLICIES)}.",
                                 param_hint="--overflow")
    if queue_bytes < max_frame:
        raise typer.BadParameter(f"a stream's queue ({queue_bytes} bytes) must hold the largest "
                                 f"frame (--max-frame {max_frame}).", param_hint="--queue-bytes")

    try:
        notifier = Notifier.from_environment()
    except NotifierMissing as err:
        print(f"edgeser: {err}", file=sys.stderr)
        raise typer.Exit(1)
    options = ServeOptions(
        socket_path=socket_path, socket_mode=mode, tcp=address, stdio=stdio, max_line=max_line,
        max_frame=max_frame, queue_bytes=queue_bytes, out_queue_bytes=out_queue_bytes,
        max_streams=max_streams, max_streams_per_client=max_streams_per_client,
        max_clients=max_clients, client_timeout_s=client_timeout, overflow=overflow,
        batch_wait_s=batch_wait_ms / 1000, drain_timeout_s=drain_timeout,
    )
    detection = DetectionOptions(
        threads=threads, window_s=window, hop_s=hop, batch_size=batch_size, silence_dbfs=silence,
        threshold=threshold, operating_point=operating_point, min_duration_s=min_duration,
        merge_gap_s=merge_gap, release=release, device=device, fallback=fallback,
        vad=vad, min_speech=min_speech, denoise=denoise,
    )
    server = None
    try:
        bundle_dir = _model.existing(model, "edgeser serve --model")
        server = Server(bundle_dir, detection, options, notifier=notifier)
        addresses = server.listen()  # first: a live socket is said before a model loads
        loaded = server.load()
    except EdgeserError as err:
        if server is not None:
            server.close_listeners()
        print(f"edgeser: {err}", file=sys.stderr)
        raise typer.Exit(1)
    detector = loaded.detector
    if detector.bundle.gate.degraded:
        print(f"edgeser: warning: model bundle {detector.bundle.path} failed the fidelity gate at "
              f"export ({'; '.join(detector.bundle.gate.failures)}); its results may differ from "
              "the original model's.", file=sys.stderr)
    if detector.device.fallback:
        print(f"edgeser: warning: {detector.device.fallback}", file=sys.stderr)
    for where in addresses:
        extra = f" (mode {mode:04o})" if where.startswith("unix:") else ""
        print(f"edgeser: listening on {where}{extra}", file=sys.stderr)
    print(f"edgeser: ready: {detector.bundle.model_id} ({detector.bundle.task}), window "
          f"{detector.window_s:g} s, hop {detector.hop_s:g} s, batch {batch_size}, "
          f"{', '.join(detector.session.providers)}", file=sys.stderr, flush=True)

    signal.signal(signal.SIGTERM, lambda *_: server.request_stop())
    signal.signal(signal.SIGINT, lambda *_: server.request_stop())
    signal.signal(signal.SIGHUP, lambda *_: server.request_reload())
    code = server.run()
    for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        # Drained: a repeated signal while the interpreter exits must not turn exit 0 into a
        # death by signal (Python restores the default handlers as it finalises).
        signal.signal(signum, signal.SIG_IGN)
    raise typer.Exit(code)
