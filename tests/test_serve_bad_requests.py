"""serve.py refuses every bad request with a one-line 4xx (a body of the wrong kind naming what the model
takes, JSON nested too deeply or with numbers too long), and answers the next good one."""
from __future__ import annotations

import base64
import json

import numpy as np
import pytest
from PIL import Image

from http_server import image_server, png_bytes, text_server  # noqa: F401 - fixtures

NOISE = png_bytes(Image.fromarray(np.random.default_rng(2).integers(0, 256, (64, 64), dtype=np.uint8), "L"))
BOMB = png_bytes(Image.new("1", (9000, 9000)))  # 81 million pixels in a few kilobytes
JPEG = png_bytes(Image.new("RGB", (16, 16)), "JPEG")


@pytest.mark.parametrize("server_name,body,headers,status", [
    ("text_server", b"{not json", {"Content-Type": "application/json"}, 400),
    ("text_server", json.dumps({"text": "Who ?"}), {"Content-Type": "application/json"}, 422),
    ("text_server", json.dumps(["Who ?"]), {"Content-Type": "application/json"}, 422),
    ("text_server", json.dumps({"inputs": 42}), {"Content-Type": "application/json"}, 422),
    ("text_server", json.dumps({"inputs": ["Who ?", None]}), {"Content-Type": "application/json"}, 422),
    ("text_server", json.dumps({"inputs": "   "}), {"Content-Type": "application/json"}, 422),
    ("text_server", json.dumps({"inputs": []}), {"Content-Type": "application/json"}, 422),
    ("text_server", json.dumps({"inputs": "x " * 400}), {"Content-Type": "application/json"}, 413),
    ("text_server", json.dumps({"inputs": ["Who ?"] * 9}), {"Content-Type": "application/json"}, 413),
    ("text_server", json.dumps({"inputs": "a" * 30_000}), {"Content-Type": "application/json"}, 413),
    ("text_server", json.dumps({"inputs": "Who ?", "parameters": {"top_k": 0}}), {"Content-Type": "application/json"}, 422),
    ("text_server", json.dumps({"inputs": "Who ?", "parameters": {"top_k": "3"}}), {"Content-Type": "application/json"}, 422),
    ("text_server", json.dumps({"inputs": "Who ?", "parameters": [3]}), {"Content-Type": "application/json"}, 422),
    ("text_server", b"\xff\xfe\x00", {"Content-Type": "application/json"}, 400),
    ("text_server", b"[" * 100_000, {"Content-Type": "application/json"}, 413),
    ("text_server", b'{"inputs": "Who ?", "parameters": {"top_k": ' + b"9" * 5000 + b"}}",
     {"Content-Type": "application/json"}, 413),
    ("text_server", b'{"inputs": "Who ?", "parameters": {"top_k": 1e' + b"9" * 5000 + b"}}",
     {"Content-Type": "application/json"}, 413),
    ("text_server", JPEG, {"Content-Type": "application/json"}, 415),  # an image sent to a text model
    ("text_server", JPEG, {"Content-Type": "image/jpeg"}, 415),
    ("image_server", b"this is not an image", {"Content-Type": "image/png"}, 415),
    ("image_server", "Who wrote Hamlet ?", {"Content-Type": "text/plain"}, 415),  # a text sent to an image model
    ("image_server", '{"inputs": ' + "[" * 20 + '"deep"' + "]" * 20 + "}",
     {"Content-Type": "application/json"}, 413),
    ("image_server", png_bytes(Image.new("L", (20, 20))), {"Content-Type": "image/png", "X-Path": "/?top_k=-1"}, 422),
    ("image_server", NOISE[:len(NOISE) // 2], {"Content-Type": "image/png"}, 422),  # truncated
    ("image_server", BOMB, {"Content-Type": "image/png"}, 422),
    ("image_server", b"", {"Content-Type": "image/png"}, 422),
    ("image_server", bytes(300_000), {"Content-Type": "application/octet-stream"}, 413),
    ("image_server", json.dumps({"inputs": "not base64 !"}), {"Content-Type": "application/json"}, 422),
    ("image_server", json.dumps({"inputs": ["aGVsbG8="] * 5}), {"Content-Type": "application/json"}, 413),
    ("image_server", b"--x\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\n1\r\n--x--\r\n",
     {"Content-Type": "multipart/form-data; boundary=x"}, 422),
    ("image_server", b"garbage", {"Content-Type": "multipart/form-data"}, 400),
])
def test_every_bad_request_is_a_one_line_4xx_and_the_next_good_one_is_answered(server_name, body, headers, status,
                                                                                request):
    server = request.getfixturevalue(server_name)
    got, answer = server.request("POST", headers.get("X-Path", "/"), body, headers)
    assert got == status, answer
    assert set(answer) == {"error"} and "\n" not in answer["error"] and "Traceback" not in answer["error"]
    if status == 415:  # a body of the wrong kind: the answer says what this model takes
        assert ("classifies texts" if server_name == "text_server" else "classifies images") in answer["error"]
    good = server.post_json({"inputs": "Who wrote Hamlet ?"} if server_name == "text_server" else
                            {"inputs": base64.b64encode(png_bytes(Image.new("L", (28, 28)))).decode()})
    assert good[0] == 200


def test_unknown_paths_and_methods_are_json_4xx(text_server):
    assert text_server.request("GET", "/nowhere")[0] == 404
    status, answer = text_server.request("DELETE", "/")
    assert status == 405 and "error" in answer
