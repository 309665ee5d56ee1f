"""The HTTP API of serve.py, shaped like the Hugging Face Inference API for text and image
classification: POST / (or /predict) with {"inputs": ..., "parameters": {"top_k": k}} answers, per
input, a list of {"label", "score"}, highest first. GET / is a page to try the model, GET /info
describes it, GET /health says it is up. Every bad request is a 4xx with one-line JSON {"error": ...}."""
from __future__ import annotations

import base64
import binascii
import contextlib
import json
import os
import socket
from dataclasses import dataclass
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
from utils.serve.inputs import decode_text, image_inputs, question_inputs, read_image
from utils.serve.predictor import class_probabilities

PAGE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "page.html")
DEFAULT_TOP_K = 5


class RequestError(Exception):
    """A request this server cannot answer: an HTTP status (4xx) and one line saying why."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class Limits:
    """What one request may hold."""

    max_inputs: int = 64
    max_text_chars: int = 10_000
    max_body_bytes: int = 10 * 2 ** 20
    max_batch: int = 64
    max_wait_ms: float = 0.0


async def read_body(request: Request, limit: int) -> bytes:
    """The request body, refused (413) as soon as it is known to be longer than `limit` bytes."""
    declared = request.headers.get("content-length", "")  # the HTTP parser refuses one that is not a number
    if declared.isdigit() and int(declared) > limit:
        raise RequestError(413, f"the body must be at most {limit:,} bytes (--max-body-mb)")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise RequestError(413, f"the body must be at most {limit:,} bytes (--max-body-mb)")
        chunks.append(chunk)
    request._body = b"".join(chunks)  # Starlette reads a multipart form from this once it is set
    return request._body


def json_body(body: bytes) -> dict[str, Any]:
    """The JSON object of a body holding {"inputs": ..., "parameters": {...}}."""
    try:
        payload = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise RequestError(400, f"the body is not valid JSON ({str(error)[:80]})") from error
    if not isinstance(payload, dict) or "inputs" not in payload:
        raise RequestError(422, 'send a JSON object {"inputs": ...} (and optionally "parameters": {"top_k": k})')
    return payload


def top_k_of(payload: dict[str, Any], classes: int) -> int:
    """How many classes to answer per input: parameters.top_k (1 or more), else DEFAULT_TOP_K."""
    parameters = payload.get("parameters") or {}
    if not isinstance(parameters, dict):
        raise RequestError(422, '"parameters" must be an object such as {"top_k": 3}')
    top_k = parameters.get("top_k", DEFAULT_TOP_K)
    if isinstance(top_k, bool) or not isinstance(top_k, int) or top_k < 1:
        raise RequestError(422, f'"top_k" must be a whole number of at least 1, got {json.dumps(top_k)[:40]}')
    return min(top_k, classes)


def query_top_k(request: Request, classes: int) -> int:
    """top_k of a request whose body is the image itself: the query's ?top_k=k, else DEFAULT_TOP_K."""
    given = request.query_params.get("top_k")
    return top_k_of({"parameters": {"top_k": int(given) if given and given.isdigit() else given}} if given else {},
                    classes)


def as_list(inputs: Any, limits: Limits, what: str) -> list[Any]:
    """`inputs` (one item or a list of them) as a non-empty list of at most max_inputs strings."""
    items = inputs if isinstance(inputs, list) else [inputs]
    if not items:
        raise RequestError(422, '"inputs" is an empty list')
    if len(items) > limits.max_inputs:
        raise RequestError(413, f"at most {limits.max_inputs} inputs per request (--max-inputs), got {len(items)}")
    if not all(isinstance(item, str) for item in items):
        raise RequestError(422, f'"inputs" must be {what} or a list of them')
    return items


def text_inputs(body: bytes, content_type: str, limits: Limits, classes: int) -> tuple[list[str], int]:
    """The texts of a request (JSON, or a text/plain body as one text) and its top_k."""
    if content_type.startswith("text/plain"):
        payload = {"inputs": decode_text(body)}  # as predict.py reads stdin
    else:
        payload = json_body(body)
    texts = as_list(payload["inputs"], limits, "a text")
    for index, text in enumerate(texts):
        if not text.strip():
            raise RequestError(422, f"input {index} is empty: give some words to classify")
        if len(text) > limits.max_text_chars:
            raise RequestError(413, f"input {index} has {len(text):,} characters; at most {limits.max_text_chars:,} "
                               "(--max-text-chars)")
    return texts, top_k_of(payload, classes)


async def image_payloads(request: Request, body: bytes, content_type: str, limits: Limits, classes: int
                         ) -> tuple[list[tuple[bytes, str]], int]:
    """The images of a request, as (bytes, name): a multipart upload, JSON of base64 strings, or the raw
    body as one image; and its top_k."""
    if content_type.startswith("multipart/form-data"):
        try:
            form = await request.form(max_files=limits.max_inputs, max_fields=limits.max_inputs)
        except Exception as error:  # noqa: BLE001 - Starlette and python-multipart raise several kinds
            raise RequestError(400, f"malformed multipart upload ({str(error)[:80]})") from error
        files = [value for _, value in form.multi_items() if hasattr(value, "read")]
        if not files:
            raise RequestError(422, "the multipart upload holds no file")
        return [(await upload.read(), upload.filename or "upload") for upload in files], query_top_k(request, classes)
    if content_type.startswith("application/json"):
        payload = json_body(body)
        images = []
        for index, text in enumerate(as_list(payload["inputs"], limits, "a base64 string of an image file")):
            try:
                images.append((base64.b64decode(text.split(",")[-1], validate=True), f"input {index}"))
            except (binascii.Error, ValueError) as error:
                raise RequestError(422, f"input {index} is not base64") from error
        return images, top_k_of(payload, classes)
    if not body:
        raise RequestError(422, "the body is empty: send an image file")
    return [(body, "the body")], query_top_k(request, classes)


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
            inputs, top_k = text_inputs(body, content_type, limits, len(names))
        else:
            payloads, top_k = await image_payloads(request, body, content_type, limits, len(names))
            try:
                inputs = await run_in_threadpool(lambda: [read_image(data, meta, task, name) for data, name in payloads])
            except InputError as error:
                raise RequestError(422, str(error)) from error
        rows = await batcher.submit(inputs)
        return JSONResponse([answer(row, names, top_k) for row in rows])

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
              Route("/health", lambda request: JSONResponse({"status": "ok"}), methods=["GET"])]
    app = Starlette(routes=routes, lifespan=lifespan,
                    exception_handlers={RequestError: request_error, HTTPException: http_error,
                                        Exception: server_error})
    app.state.batcher = batcher
    return app
