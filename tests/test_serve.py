"""serve.py: answers equal predict.py's and read unchanged by Hugging Face's InferenceClient, concurrent
requests share forward passes, SIGTERM finishes the request in flight, and the page works in a real
browser (skipped where Chromium or Playwright is absent). Bad requests: test_serve_bad_requests.py."""
from __future__ import annotations

import base64
import concurrent.futures
import http.client
import json
import os
import shutil
import signal
import socket
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

import predict
from conftest import ROOT
from data.trec import load_trec_files
from http_server import image_server, text_server  # noqa: F401 - fixtures


def predicted(capsys, model: str, inputs: list[str]) -> list[dict]:
    capsys.readouterr()
    assert predict.main([model, *inputs, "--json", "--top", "10"]) == 0
    return [json.loads(line) for line in capsys.readouterr().out.splitlines()]


def same_answer(served: list[dict], expected: dict) -> bool:
    scores = {item["label"]: item["score"] for item in served}
    return served[0]["label"] == expected["label"] and all(abs(scores[name] - p) <= 1e-6
                                                           for name, p in expected["probabilities"].items())


def test_text_answers_equal_predict_and_concurrent_requests_share_forward_passes(text_server, runs, capsys):
    questions = [q.text for q in load_trec_files(runs["trec"], allow_download=False)["test"]][:24]
    expected = predicted(capsys, os.path.join(runs["rnn"], "best.pt"), questions)
    status, answers = text_server.post_json({"inputs": questions[:8], "parameters": {"top_k": 6}})
    assert status == 200 and all(same_answer(a, e) for a, e in zip(answers, expected[:8]))
    batcher = text_server.app.state.batcher
    batcher.batch_sizes.clear()
    usual_wait, batcher.max_wait = batcher.max_wait, 0.5  # time enough for the threads below to come together, even on a busy machine
    try:
        with concurrent.futures.ThreadPoolExecutor(16) as pool:  # one question per request, all at once
            replies = list(pool.map(lambda q: text_server.post_json({"inputs": q, "parameters": {"top_k": 6}}),
                                    questions))
    finally:
        batcher.max_wait = usual_wait
    assert all(status == 200 and same_answer(answer[0], e) for (status, answer), e in zip(replies, expected))
    assert max(batcher.batch_sizes) > 1  # requests were grouped
    status, answer = text_server.post_json({"inputs": "Who wrote Hamlet ?"})  # texts: a list per input, as HF's
    assert status == 200 and len(answer) == 1 and len(answer[0]) == 5  # top 5 by default
    assert [item["score"] for item in answer[0]] == sorted((item["score"] for item in answer[0]), reverse=True)
    status, info = text_server.request("GET", "/info")
    assert info["task"] == "text-classification" and info["class_names"] == ["ABBR", "DESC", "ENTY", "HUM", "LOC", "NUM"]
    assert text_server.request("GET", "/health") == (200, {"status": "ok", "inputs_in_flight": 0})


def test_image_answers_equal_predict_for_raw_multipart_and_base64_bodies(image_server, runs, tmp_path, capsys):
    rng = np.random.default_rng(0)
    paths = []
    for index, mode in enumerate(("L", "RGB", "RGBA")):
        pixels = rng.integers(0, 256, (40, 30, len(mode)) if mode != "L" else (40, 30), dtype=np.uint8)
        paths.append(str(tmp_path / f"{index}.png"))
        Image.fromarray(pixels, mode).save(paths[-1])
    expected = predicted(capsys, os.path.join(runs["dnn"], "best.pt"), paths)
    files = [open(path, "rb").read() for path in paths]
    for data, truth in zip(files, expected):
        status, answer = image_server.request("POST", "/?top_k=10", data, {"Content-Type": "image/png"})
        assert status == 200 and same_answer(answer, truth)
    boundary = "b0undary"
    multipart = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.png\"\r\n"
                 "Content-Type: image/png\r\n\r\n").encode() + files[1] + f"\r\n--{boundary}--\r\n".encode()
    status, answer = image_server.request("POST", "/predict?top_k=10", multipart,
                                          {"Content-Type": f"multipart/form-data; boundary={boundary}"})
    assert status == 200 and same_answer(answer, expected[1])
    status, answers = image_server.post_json({"inputs": [base64.b64encode(data).decode() for data in files],
                                              "parameters": {"top_k": 10}})
    assert status == 200 and all(same_answer(a, e) for a, e in zip(answers, expected))


def test_the_page_is_self_contained(text_server):
    status, page = text_server.request("GET", "/")
    assert status == 200 and "<textarea" in page and "<script" in page
    assert "http://" not in page and "https://" not in page  # nothing fetched from elsewhere (no CDN)


def inputs_in_flight(port: int) -> int:
    """What a running serve.py's GET /health says of the inputs it holds."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    connection.request("GET", "/health")
    return json.loads(connection.getresponse().read())["inputs_in_flight"]


def test_sigterm_answers_the_request_in_flight_then_exits_0(runs):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = subprocess.Popen([sys.executable, "serve.py", os.path.join(runs["rnn"], "best.pt"), "--port", str(port),
                               "--max-wait-ms", "1500"], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True)
    try:
        assert "serving" in server.stdout.readline()
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        connection.request("POST", "/", json.dumps({"inputs": "Who wrote Hamlet ?"}), {"Content-Type": "application/json"})
        while inputs_in_flight(port) == 0:  # until the request waits in the batcher for more inputs
            assert server.poll() is None
        server.send_signal(signal.SIGTERM)
        response = connection.getresponse()
        assert response.status == 200 and json.loads(response.read())[0][0]["label"]
        assert server.wait(timeout=30) == 0
    finally:
        server.kill()
    assert "Traceback" not in server.stderr.read()


def test_a_port_in_use_is_one_line(runs, capsys):
    import serve

    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        assert serve.main([os.path.join(runs["rnn"], "best.pt"), "--port", str(port)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: cannot listen on 127.0.0.1")


def chromium_or_skip() -> str:
    pytest.importorskip("playwright.sync_api")
    browser = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
    if not browser:
        pytest.skip("no Chromium installed (apt-get install chromium)")
    return browser


@pytest.mark.parametrize("kind", ["text", "image"])
def test_the_page_classifies_in_a_real_browser(kind, text_server, image_server, runs, tmp_path, capsys):
    browser_path = chromium_or_skip()  # before the import: skips where Playwright is not installed
    from playwright.sync_api import sync_playwright

    server = text_server if kind == "text" else image_server
    if kind == "text":
        expected = predicted(capsys, os.path.join(runs["rnn"], "best.pt"), ["Who wrote Hamlet ?"])[0]["label"]
    else:
        image = str(tmp_path / "shoe.png")
        Image.fromarray(np.random.default_rng(1).integers(0, 256, (28, 28), dtype=np.uint8), "L").save(image)
        expected = predicted(capsys, os.path.join(runs["dnn"], "best.pt"), [image])[0]["label"]
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=browser_path, args=["--no-sandbox"])
        page = browser.new_page()
        page.goto(f"http://127.0.0.1:{server.port}/")
        if kind == "text":
            page.fill("#text", "Who wrote Hamlet ?")
            page.click("#classify")
        else:
            page.set_input_files("#file", image)
        page.wait_for_selector("#results .row")
        shown = page.inner_text("#results .row .label")
        browser.close()
    assert shown == expected


def test_hugging_face_inference_client_reads_the_answers_unchanged(text_server, image_server, runs, tmp_path, capsys):
    from huggingface_hub import InferenceClient

    expected = predicted(capsys, os.path.join(runs["rnn"], "best.pt"), ["Who wrote Hamlet ?"])[0]
    answers = InferenceClient(model=f"http://127.0.0.1:{text_server.port}").text_classification("Who wrote Hamlet ?")
    assert [item.label for item in answers] == list(expected["probabilities"])[:5]
    assert [item.score for item in answers] == pytest.approx(list(expected["probabilities"].values())[:5], abs=1e-6)
    image = str(tmp_path / "shoe.png")
    Image.fromarray(np.random.default_rng(3).integers(0, 256, (28, 28), dtype=np.uint8), "L").save(image)
    expected = predicted(capsys, os.path.join(runs["dnn"], "best.pt"), [image])[0]
    answers = InferenceClient(model=f"http://127.0.0.1:{image_server.port}").image_classification(image, top_k=3)
    assert [item.label for item in answers] == list(expected["probabilities"])[:3]
    assert [item.score for item in answers] == pytest.approx(list(expected["probabilities"].values())[:3], abs=1e-6)
