"""serve.py's application running in a thread of the test process, a small HTTP client for it, and the
servers of the tiny text and image runs as fixtures."""
from __future__ import annotations

import http.client
import io
import json
import os
import threading
import time

import pytest
from PIL import Image

from utils.serve.http_api import listening_socket, make_app
from utils.serve.request_parsing import Limits
from utils.serve.predictor import load_for_inference


class RunningServer:
    """serve.py's application on a free port of 127.0.0.1, in a thread of this process."""

    def __init__(self, model_path: str, limits: Limits) -> None:
        import uvicorn

        model, checkpoint = load_for_inference(model_path)
        self.app = make_app(model, checkpoint, model_path, limits)
        self.server = uvicorn.Server(uvicorn.Config(self.app, log_level="error"))
        self.server.install_signal_handlers = lambda: None  # the thread is not the main one
        self.socket = listening_socket("127.0.0.1", 0)
        self.port = self.socket.getsockname()[1]
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.socket]}, daemon=True)
        self.thread.start()
        while not self.server.started:
            time.sleep(0.01)

    def request(self, method: str, path: str = "/", body: bytes | str | None = None,
                headers: dict[str, str] | None = None) -> tuple[int, object]:
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        connection.request(method, path, body=body, headers=headers or {})
        response = connection.getresponse()
        raw = response.read()
        connection.close()
        kind = response.getheader("content-type", "")
        return response.status, json.loads(raw) if kind.startswith("application/json") else raw.decode()

    def post_json(self, payload) -> tuple[int, object]:
        return self.request("POST", "/", json.dumps(payload), {"Content-Type": "application/json"})

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


@pytest.fixture(scope="module")
def text_server(runs):
    server = RunningServer(os.path.join(runs["rnn"], "best.pt"), Limits(max_inputs=8, max_text_chars=500,
                                                                         max_body_bytes=20_000, max_wait_ms=50))
    yield server
    server.stop()


@pytest.fixture(scope="module")
def image_server(runs):
    server = RunningServer(os.path.join(runs["dnn"], "best.pt"), Limits(max_inputs=4, max_body_bytes=200_000))
    yield server
    server.stop()


def png_bytes(image: Image.Image, kind: str = "PNG") -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, kind)
    return buffer.getvalue()
