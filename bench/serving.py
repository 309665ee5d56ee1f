"""Load on serve.py: requests per second and latency at several numbers of concurrent clients, with
and without dynamic batching, for checkpoints and ONNX files.

    python bench/serving.py runs/rnn-.../best.pt runs/rnn-.../best.onnx runs/cnn-.../best.pt --data-dir ../shared/data

For each model, serve.py runs in its own process on 127.0.0.1 twice: with batching (the defaults)
and without (--max-batch 1). Clients are threads of this process, each sending one input per request
(a TREC test question, or a FashionMNIST test image as PNG bytes) and waiting for the answer before
sending the next, for --seconds at each of --clients. Only 127.0.0.1 is ever contacted. Saves
bench/results/serving[-TAG].json with the machine and command.
"""
from __future__ import annotations

import argparse
import http.client
import io
import json
import os
import socket
import statistics
import subprocess
import sys
import threading
import time

import common


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def request_bodies(model: str, data_dir: str) -> tuple[list[bytes], dict[str, str]]:
    """Bodies of one input each for the model's kind, and their headers."""
    from PIL import Image

    from data.bundle import kind_of
    from data.fashion_mnist import load_fashion_mnist
    from data.trec import load_trec_files
    from utils.serve.predictor import load_for_inference

    _, checkpoint = load_for_inference(model)
    if kind_of(checkpoint["task"]) == "text":
        questions = [q.text for q in load_trec_files(data_dir, allow_download=False)["test"]]
        return [json.dumps({"inputs": q}).encode() for q in questions], {"Content-Type": "application/json"}
    bodies = []
    for image in load_fashion_mnist(data_dir, allow_download=False).splits["test"].inputs[:500, 0].numpy():
        buffer = io.BytesIO()
        Image.fromarray(image, "L").save(buffer, "PNG")
        bodies.append(buffer.getvalue())
    return bodies, {"Content-Type": "image/png"}


def client_loop(port: int, bodies: list[bytes], headers: dict[str, str], start: int, until: float,
                latencies: list[float]) -> None:
    """Send requests one after another until `until`, recording each latency in seconds."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    index = start
    while time.perf_counter() < until:
        began = time.perf_counter()
        connection.request("POST", "/", body=bodies[index % len(bodies)], headers=headers)
        response = connection.getresponse()
        response.read()
        if response.status != 200:
            raise RuntimeError(f"the server answered {response.status}")
        latencies.append(time.perf_counter() - began)
        index += 1
    connection.close()


def load(port: int, bodies: list[bytes], headers: dict[str, str], clients: int, seconds: float) -> dict:
    """Requests/s and p50/p99 latency (ms) of `clients` concurrent client loops for `seconds`."""
    latencies: list[list[float]] = [[] for _ in range(clients)]
    until = time.perf_counter() + seconds
    threads = [threading.Thread(target=client_loop, args=(port, bodies, headers, 37 * i, until, latencies[i]))
               for i in range(clients)]
    began = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - began
    every = sorted(value for values in latencies for value in values)
    return {"clients": clients, "requests": len(every), "requests_per_s": round(len(every) / elapsed, 1),
            "p50_ms": round(1000 * statistics.median(every), 2),
            "p99_ms": round(1000 * every[min(len(every) - 1, int(0.99 * len(every)))], 2)}


def serve(model: str, port: int, batching: bool, wait_ms: float | None) -> subprocess.Popen:
    """serve.py on `port` (batching waiting `wait_ms` for more inputs, else its default), once it says so."""
    command = [sys.executable, os.path.join(common.ROOT, "serve.py"), model, "--port", str(port),
               *(["--max-wait-ms", str(wait_ms)] if batching and wait_ms is not None else []),
               *([] if batching else ["--max-batch", "1"])]
    server = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    if "serving" not in server.stdout.readline():
        raise RuntimeError(f"serve.py did not start: {server.stderr.read()[-500:]}")
    return server


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("models", nargs="+", help="best.pt files or .onnx exports")
    parser.add_argument("--data-dir", default="../shared/data")
    parser.add_argument("--clients", type=int, nargs="+", default=[1, 8, 64])
    parser.add_argument("--seconds", type=float, default=5.0, help="length of each measurement")
    parser.add_argument("--tag", default="", help="suffix of the results file: bench/results/serving-TAG.json")
    parser.add_argument("--max-wait-ms", type=float, default=None, help="serve.py's --max-wait-ms when batching "
                        "(default: its own)")
    args = parser.parse_args()
    rows = []
    for model in args.models:
        bodies, headers = request_bodies(model, args.data_dir)
        for batching in (True, False):
            port = free_port()
            server = serve(model, port, batching, args.max_wait_ms)
            try:
                load(port, bodies, headers, 4, 1.0)  # warm-up
                for clients in args.clients:
                    row = {"model": model, "backend": "onnxruntime" if model.endswith(".onnx") else "pytorch",
                           "batching": batching, "max_wait_ms": args.max_wait_ms if batching else None,
                           **load(port, bodies, headers, clients, args.seconds)}
                    rows.append(row)
                    print(row, flush=True)
            finally:
                server.terminate()
                server.wait(timeout=60)
    common.print_table(rows, ["model", "backend", "batching", "clients", "requests_per_s", "p50_ms", "p99_ms"])
    common.save_results("serving" + (f"-{args.tag}" if args.tag else ""), {"seconds": args.seconds, "rows": rows})


if __name__ == "__main__":
    main()
