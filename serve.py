"""Serve a trained model over HTTP, with a page to try it in the browser.

    python serve.py runs/rnn-.../best.pt                  # http://127.0.0.1:8000
    python serve.py runs/cnn-.../best.onnx --port 8080    # an export.py file, run by onnxruntime

    curl -s localhost:8000 -d '{"inputs": "Who wrote Hamlet ?"}'
    curl -s localhost:8000 -d '{"inputs": ["Where is Lima ?", "How far is the moon ?"], "parameters": {"top_k": 2}}'
    curl -s localhost:8000 --data-binary @shoe.jpg -H 'Content-Type: image/jpeg'    # an image model
    curl -s localhost:8000 -F file=@shoe.jpg                                         # the same, as an upload

The API has the shape of the Hugging Face Inference API for text and image classification: each
input gets a list of {"label", "score"}, highest first (top_k, default 5). Images may also come as
base64 strings: {"inputs": ["iVBORw0..."]}. Inputs are prepared exactly as predict.py prepares them,
so a served answer is predict.py's answer. Concurrent requests are classified together, up to
--max-batch inputs per forward pass: those that arrived while the previous pass was computed, and
those that arrive within --max-wait-ms (default 0: no waiting; --max-batch 1: each input alone). GET /info describes the model, GET /health says the server is up. Bad requests get a
4xx answer {"error": "..."}. SIGTERM or Ctrl-C finishes the requests in flight, then exits 0.
"""
from __future__ import annotations

import argparse
import sys
from typing import Sequence

from utils.errors import ConfigError, run_tool
from utils.flags import ArgumentParser
from utils.serve.http_api import listening_socket, make_app
from utils.serve.request_parsing import Limits
from utils.serve.predictor import load_for_inference, run_summary_of


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model", help="a run's best.pt (or last.pt), or a .onnx file from export.py")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (0.0.0.0: every interface)")
    parser.add_argument("--port", type=int, default=8000, help="port to listen on (0: any free port)")
    limits = Limits()
    parser.add_argument("--max-batch", type=int, default=limits.max_batch, help="most inputs per forward pass (1: "
                        "no batching)")
    parser.add_argument("--max-wait-ms", type=float, default=limits.max_wait_ms, help="longest wait for more inputs "
                        "to batch (0: batch what arrived while the previous batch was computed)")
    parser.add_argument("--max-inputs", type=int, default=limits.max_inputs, help="most inputs per request")
    parser.add_argument("--max-text-chars", type=int, default=limits.max_text_chars, help="longest text, in characters")
    parser.add_argument("--max-body-mb", type=float, default=limits.max_body_bytes / 2 ** 20,
                        help="largest request body, in MiB")
    parser.add_argument("--threads", type=int, default=0, help="torch threads for the model (0: torch's choice)")
    args = parser.parse_intermixed_args(argv)
    for name in ("max_batch", "max_inputs", "max_text_chars"):
        if getattr(args, name) < 1:
            parser.error(f"argument --{name.replace('_', '-')}: must be at least 1, got {getattr(args, name)}")
    if not 0 <= args.port <= 65535 or args.max_wait_ms < 0 or not args.max_body_mb > 0 or args.threads < 0:
        parser.error("--port must be 0-65535, --max-wait-ms 0 or more, --max-body-mb above 0, --threads 0 or more")
    return args


def serve(args: argparse.Namespace) -> None:
    """Load the model and serve it until SIGTERM or Ctrl-C."""
    import torch
    import uvicorn

    if args.threads:
        torch.set_num_threads(args.threads)
    model, checkpoint = load_for_inference(args.model)
    limits = Limits(args.max_inputs, args.max_text_chars, int(args.max_body_mb * 2 ** 20), args.max_batch,
                    args.max_wait_ms)
    app = make_app(model, checkpoint, args.model, limits, run_summary_of(args.model))
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", timeout_graceful_shutdown=30))
    try:
        listening = listening_socket(args.host, args.port)
    except OSError as error:
        raise ConfigError(f"cannot listen on {args.host}:{args.port}: {error.strerror or error}") from error
    host, port = listening.getsockname()[:2]
    print(f"serving {args.model} ({checkpoint['model_name']}, {len(checkpoint['class_names'])} classes) at "
          f"http://{host}:{port}/  (Ctrl-C to stop)", flush=True)
    try:
        server.run(sockets=[listening])
    except KeyboardInterrupt:  # uvicorn hands the signal on once the requests in flight are answered
        pass
    print("stopped: every request in flight was answered", flush=True)


def main(argv: Sequence[str] | None = None) -> int:
    """Command line; returns the exit code (errors: one line, exit 2)."""
    return run_tool(lambda: serve(parse_args(argv)))


if __name__ == "__main__":
    sys.exit(main())
