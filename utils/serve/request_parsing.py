"""What a request to serve.py holds, read and checked: its body within the size limits, JSON within
nesting and number limits, texts or images of the kind the model takes, and top_k. Each problem is a
RequestError: a 4xx status and one line saying why."""
from __future__ import annotations

import base64
import binascii
import io
import json
import re
from dataclasses import dataclass
from typing import Any

from PIL import Image, UnidentifiedImageError
from starlette.requests import Request

from utils.serve.inputs import decode_text

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
    max_json_depth: int = 16  # nesting of JSON arrays and objects (a request needs 3)
    max_number_chars: int = 32  # characters of one JSON number (Python refuses integers of over 4,300 digits)


JSON_STRING = re.compile(rb'"(?:[^"\\]|\\.)*"')
JSON_BRACKET = re.compile(rb"[\[\]{}]")


def json_depth(body: bytes) -> int:
    """How deeply the arrays and objects of a JSON text nest (strings skipped), without parsing it."""
    depth = deepest = 0
    for bracket in JSON_BRACKET.findall(JSON_STRING.sub(b"", body)):
        depth += 1 if bracket in b"[{" else -1
        deepest = max(deepest, depth)
    return deepest


def is_utf8(body: bytes) -> bool:
    """Whether the bytes are UTF-8 text."""
    try:
        body.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def is_image(body: bytes) -> bool:
    """Whether the bytes start like an image file Pillow knows."""
    try:
        with Image.open(io.BytesIO(body)):
            return True
    except (UnidentifiedImageError, OSError, ValueError):
        return False


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


def bounded_number(kind: type, limit: int) -> Any:
    """A json.loads hook that parses a number of at most `limit` characters as `kind`, else a 413."""
    def parse(literal: str) -> Any:
        if len(literal) > limit:
            raise RequestError(413, f"a number in the body has {len(literal):,} characters; at most {limit}")
        return kind(literal)
    return parse


def json_body(body: bytes, limits: Limits) -> dict[str, Any]:
    """The JSON object of a body holding {"inputs": ..., "parameters": {...}}, its nesting and numbers
    within `limits`."""
    if json_depth(body) > limits.max_json_depth:
        raise RequestError(413, f"the JSON body nests deeper than {limits.max_json_depth} levels")
    try:
        payload = json.loads(body, parse_int=bounded_number(int, limits.max_number_chars),
                             parse_float=bounded_number(float, limits.max_number_chars))
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


TEXTS_ONLY = ('this model classifies texts, not images: send {"inputs": "a text"} (or a list of texts) as JSON, '
              "or one text as a text/plain body")
IMAGES_ONLY = ("this model classifies images, not texts: send an image file (PNG, JPEG, ...) as the body, a "
               'multipart upload, or {"inputs": ["<base64 of an image file>", ...]} as JSON')


def text_inputs(body: bytes, content_type: str, limits: Limits, classes: int) -> tuple[list[str], int]:
    """The texts of a request (JSON, or a text/plain body as one text) and its top_k."""
    if content_type.startswith(("image/", "multipart/form-data")) or (not is_utf8(body) and is_image(body)):
        raise RequestError(415, TEXTS_ONLY)
    if content_type.startswith("text/plain"):
        payload = {"inputs": decode_text(body)}  # as predict.py reads stdin
    else:
        payload = json_body(body, limits)
    texts = as_list(payload["inputs"], limits, "a text")
    for index, text in enumerate(texts):
        if not text.strip():
            raise RequestError(422, f"input {index} is empty: give some words to classify")
        if len(text) > limits.max_text_chars:
            raise RequestError(413, f"input {index} has {len(text):,} characters; at most {limits.max_text_chars:,} "
                               "(--max-text-chars)")
    return texts, top_k_of(payload, classes)


async def image_payloads(request: Request, body: bytes, content_type: str, limits: Limits, classes: int
                         ) -> tuple[list[tuple[bytes, str]], int, bool]:
    """The images of a request, as (bytes, name): a multipart upload, JSON of base64 strings, or the raw
    body as one image; its top_k; and whether it sent one image rather than a list."""
    if content_type.startswith("text/plain"):
        raise RequestError(415, IMAGES_ONLY)
    if content_type.startswith("multipart/form-data"):
        try:
            form = await request.form(max_files=limits.max_inputs, max_fields=limits.max_inputs)
        except Exception as error:  # noqa: BLE001 - Starlette and python-multipart raise several kinds
            raise RequestError(400, f"malformed multipart upload ({str(error)[:80]})") from error
        files = [value for _, value in form.multi_items() if hasattr(value, "read")]
        if not files:
            raise RequestError(422, "the multipart upload holds no file")
        return ([(await upload.read(), upload.filename or "upload") for upload in files], query_top_k(request, classes),
                len(files) == 1)
    if content_type.startswith("application/json"):
        payload = json_body(body, limits)
        images = []
        for index, text in enumerate(as_list(payload["inputs"], limits, "a base64 string of an image file")):
            try:
                images.append((base64.b64decode(text.split(",")[-1], validate=True), f"input {index}"))
            except (binascii.Error, ValueError) as error:
                raise RequestError(422, f"input {index} is not base64") from error
        return images, top_k_of(payload, classes), not isinstance(payload["inputs"], list)
    if not body:
        raise RequestError(422, "the body is empty: send an image file")
    if not is_image(body):
        raise RequestError(415, f"the body is not an image file Pillow can read; {IMAGES_ONLY}")
    return [(body, "the body")], query_top_k(request, classes), True
