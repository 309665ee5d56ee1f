"""serve.py's application running in a thread of the test process, and a small HTTP client for it."""
from __future__ import annotations

import http.client
import json
import threading
import time

from utils.serve.http_api import Limits, listening_socket, make_app
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
