"""The HTTP API of serve.py, shaped like the Hugging Face Inference API for text and image
classification, so that its clients (huggingface_hub's InferenceClient) read the answers unchanged:
POST / (or /predict) with {"inputs": ..., "parameters": {"top_k": k}} answers, for texts, a list per
input of {"label", "score"}, highest first, also for one text; for one image (a body, one upload,
one base64 string) one such list, and for a list of images a list per image. GET / is a page to try
the model, GET /info describes it, GET /health says it is up and how many inputs it holds. Every bad
request is a 4xx with one-line JSON {"error": ...} (utils.serve.request_parsing)."""
from __future__ import annotations

import contextlib
import os
import socket
from typing import Any

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse
from starlette.routing import Route

from data.bundle import kind_of
from data.images import image_shape
from utils.errors import InputError
from utils.serve.batching import DynamicBatcher
from utils.serve.inputs import image_inputs, question_inputs, read_image
from utils.serve.predictor import class_probabilities
from utils.serve.request_parsing import Limits, RequestError, image_payloads, read_body, text_inputs

PAGE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "page.html")


def answer(probabilities: Any, names: list[str], top_k: int) -> list[dict[str, Any]]:
    """The top_k classes of one probability row, highest first."""
    scores, indices = probabilities.topk(top_k)
    return [{"label": names[i], "score": float(s)} for s, i in zip(scores.tolist(), indices.tolist())]


def describe(checkpoint: dict[str, Any], model_path: str, summary: dict[str, Any] | None) -> dict[str, Any]:
    """What GET /info says: task, classes, model file, input shape and the run's test accuracy."""
    meta, text = checkpoint["meta"], kind_of(checkpoint["task"]) == "text"
    shape = {"max_tokens": meta.get("max_length")} if text else \
        {"channels": int(meta.get("channels", 1)), "height_width": list(image_shape(meta))}
    return {"task": "text-classification" if text else "image-classification", "data": checkpoint["task"],
            "class_names": list(checkpoint["class_names"]), "model": os.path.basename(model_path),
            "model_name": checkpoint.get("model_name"), "input": shape,
            "test_acc": (summary or {}).get("test_acc")}


def listening_socket(host: str, port: int) -> socket.socket:
    """A TCP socket listening on host:port (port 0: a free one), sending each answer at once: without
    TCP_NODELAY a keep-alive client waits ~40 ms per answer (Nagle against its delayed ACK)."""
    listening = socket.create_server((host, port))
    listening.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # accepted connections inherit it
    return listening


def make_app(model: Any, checkpoint: dict[str, Any], model_path: str, limits: Limits,
             summary: dict[str, Any] | None = None) -> Starlette:
    """The Starlette application serving `model` (a checkpoint's or an .onnx file's)."""
    meta, names, task = checkpoint["meta"], list(checkpoint["class_names"]), checkpoint["task"]
    text = kind_of(task) == "text"

    def classify(items: list[Any]) -> Any:
        return class_probabilities(model, question_inputs(items, meta) if text else image_inputs(items, meta))

    batcher = DynamicBatcher(classify, limits.max_batch, limits.max_wait_ms)
    info = describe(checkpoint, model_path, summary)
    with open(PAGE, encoding="utf-8") as file:
        page_html = file.read()

    async def predict(request: Request) -> JSONResponse:
        content_type = request.headers.get("content-type", "").lower()
        body = await read_body(request, limits.max_body_bytes)
        if text:
            (inputs, top_k), single = text_inputs(body, content_type, limits, len(names)), False
        else:
            payloads, top_k, single = await image_payloads(request, body, content_type, limits, len(names))
            try:
                inputs = await run_in_threadpool(lambda: [read_image(data, meta, task, name) for data, name in payloads])
            except InputError as error:
                raise RequestError(422, str(error)) from error
        answers = [answer(row, names, top_k) for row in await batcher.submit(inputs)]
        return JSONResponse(answers[0] if single else answers)

    async def page(request: Request) -> HTMLResponse:
        return HTMLResponse(page_html)

    async def request_error(request: Request, error: RequestError) -> JSONResponse:
        return JSONResponse({"error": str(error)}, status_code=error.status)

    async def http_error(request: Request, error: HTTPException) -> JSONResponse:
        return JSONResponse({"error": error.detail or "not found"}, status_code=error.status_code)

    async def server_error(request: Request, error: Exception) -> JSONResponse:
        return JSONResponse({"error": f"the server failed on this request ({type(error).__name__})"}, status_code=500)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette):
        await batcher.start()
        yield
        await batcher.stop()

    routes = [Route("/", page, methods=["GET"]), Route("/", predict, methods=["POST"]),
              Route("/predict", predict, methods=["POST"]),
              Route("/info", lambda request: JSONResponse(info), methods=["GET"]),
              Route("/health", lambda request: JSONResponse({"status": "ok", "inputs_in_flight": batcher.in_flight}),
                    methods=["GET"])]
    app = Starlette(routes=routes, lifespan=lifespan,
                    exception_handlers={RequestError: request_error, HTTPException: http_error,
                                        Exception: server_error})
    app.state.batcher = batcher
    return app
