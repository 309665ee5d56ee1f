"""train_cnn.py --pretrained: a timm network in timm's folder format fine-tuned on a folder of photos of
mixed sizes, its preprocessing kept and followed by predict, ONNX, the timm folder and pipeline(), and
serve; the decoded images in a memory-mapped cache whose decoding resumes; bad input in one line."""
from __future__ import annotations

import json
import os

import numpy as np
import onnx
import pytest
import timm
import torch
from PIL import Image
from safetensors.torch import load_file
from torchvision import transforms

import export
import predict
import train_cnn
from conftest import assert_one_error_line, built_once
from data.disk_images import DiskImages
from test_image_folders import COLOURS, write_image_folder
from tiny_models import write_tiny_timm
from utils.serve.predictor import load_for_inference
from utils.storage.checkpoint import load_checkpoint

SIZES = ((40, 30), (52, 48), (36, 60))  # photos of mixed sizes and aspect ratios


@pytest.fixture(scope="module")
def network(tmp_path_factory, worker_id) -> str:
    """A tiny timm network (random weights) in timm's folder format, input 32 px, crop 0.875."""
    return built_once(tmp_path_factory, worker_id, "tiny-timm", lambda folder: write_tiny_timm(str(folder / "net")))


@pytest.fixture(scope="module")
def photos(tmp_path_factory) -> str:
    return write_image_folder(tmp_path_factory.mktemp("photos") / "photos", per_class=16, splits=("",), sizes=SIZES)


def flags(dataset: str, out: str, *extra: str) -> list[str]:
    return ["--dataset", dataset, "--out-dir", out, "--epochs", "2", "--batch-size", "16", "--no-progress",
            "--no-tensorboard", *extra]


@pytest.fixture(scope="module")
def fine_tuned(network, photos, tmp_path_factory) -> str:
    """The run folder of the tiny network fine-tuned on the photos with no other flag."""
    out = str(tmp_path_factory.mktemp("runs") / "fine-tuned")
    train_cnn.main(flags(photos, out, "--pretrained", network))
    return out


def test_the_pretrained_weights_load_the_head_is_new_and_the_preprocessing_is_kept(network, photos, fine_tuned,
                                                                                  tmp_path):
    checkpoint = load_checkpoint(os.path.join(fine_tuned, "best.pt"))
    meta = checkpoint["meta"]
    assert meta["image_size"] == 32 and meta["crop_pct"] == 0.875 and meta["interpolation"] == "bicubic"
    assert meta["mean"] == [0.5, 0.4, 0.3] and meta["std"] == [0.2, 0.25, 0.3] and meta["channels"] == 3
    assert checkpoint["model_kwargs"]["architecture"] == "test_efficientnet"
    assert checkpoint["pretrained"] == {"source": network, "file_dtype": "float32"}
    assert checkpoint["config"]["epochs"] == 2 and checkpoint["config"]["warmup_epochs"] == 1.0  # the recipe
    assert checkpoint["model"]["model.classifier.weight"].shape == (len(COLOURS), 256)  # a new head
    # with the backbone frozen, its weights are the file's after training
    out = str(tmp_path / "frozen")
    train_cnn.main(flags(photos, out, "--pretrained", network, "--freeze-backbone", "--epochs", "1"))
    file_weights, trained = load_file(os.path.join(network, "model.safetensors")), load_checkpoint(
        os.path.join(out, "best.pt"))["model"]
    assert torch.equal(trained["model.conv_stem.weight"], file_weights["conv_stem.weight"])
    assert not torch.equal(trained["model.classifier.weight"], torch.zeros_like(trained["model.classifier.weight"]))


def timm_eval_inputs(path: str, meta: dict) -> torch.Tensor:
    """A file as timm and torchvision evaluate it: Resize(size / crop_pct) then CenterCrop(size)."""
    size = meta["image_size"]
    pipeline = transforms.Compose([transforms.Resize(int(size / meta["crop_pct"]),
                                                     interpolation=transforms.InterpolationMode.BICUBIC),
                                   transforms.CenterCrop(size), transforms.ToTensor(),
                                   transforms.Normalize(meta["mean"], meta["std"])])
    with Image.open(path) as image:
        return pipeline(image.convert("RGB"))[None]


def test_predict_reads_photos_as_the_network_was_evaluated(photos, fine_tuned, capsys):
    model_path = os.path.join(fine_tuned, "best.pt")
    paths = [os.path.join(photos, "red", f"{i}.png") for i in (0, 6)] + [os.path.join(photos, "blue", "2.gif")]
    assert predict.main([model_path, "--json", "--top", "3", *paths]) == 0
    answers = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    model, checkpoint = load_for_inference(model_path)
    for path, answer in zip(paths, answers):
        with torch.no_grad():
            expected = model(timm_eval_inputs(path, checkpoint["meta"])).softmax(dim=1)[0]
        served = answer["probabilities"]
        names = checkpoint["class_names"]
        assert max(abs(served[name] - float(expected[i])) for i, name in enumerate(names)) < 1e-4


def test_onnx_keeps_the_preprocessing_and_the_timm_folder_loads_in_timm_and_pipeline(fine_tuned, tmp_path, capsys):
    model_path = os.path.join(fine_tuned, "best.pt")
    assert export.main([model_path, "--out", str(tmp_path / "model.onnx")]) == 0
    metadata = {prop.key: json.loads(prop.value) for prop in onnx.load(str(tmp_path / "model.onnx")).metadata_props}
    assert metadata["meta"]["crop_pct"] == 0.875 and metadata["meta"]["image_size"] == 32
    assert export.main([model_path, "--format", "hf", "--out", str(tmp_path / "hf")]) == 0
    said = capsys.readouterr().out
    assert "same label 100.0%" in said
    config = json.loads((tmp_path / "hf" / "config.json").read_text())
    assert config["label_names"] == sorted(COLOURS) and config["pretrained_cfg"]["crop_pct"] == 0.875
    assert timm.create_model(f"local-dir:{tmp_path / 'hf'}", pretrained=True).num_classes == len(COLOURS)


def test_the_server_answers_as_predict(fine_tuned, photos, capsys):
    from http_server import RunningServer
    from utils.serve.request_parsing import Limits

    model_path = os.path.join(fine_tuned, "best.pt")
    path = os.path.join(photos, "green", "1.jpg")
    assert predict.main([model_path, "--json", "--top", "3", path]) == 0
    expected = json.loads(capsys.readouterr().out)["probabilities"]
    server = RunningServer(model_path, Limits(max_inputs=4, max_body_bytes=200_000, max_wait_ms=10))
    try:
        with open(path, "rb") as file:
            status, answer = server.request("POST", "/?top_k=3", file.read(), {"Content-Type": "image/jpeg"})
    finally:
        server.stop()
    assert status == 200 and all(abs(row["score"] - expected[row["label"]]) < 1e-5 for row in answer)


def test_images_beyond_the_memory_limit_train_from_the_memory_mapped_cache_with_the_same_numbers(
        network, photos, tmp_path, monkeypatch, capsys):
    from utils.data_setup import image_data
    from utils.runtime import Runtime

    in_memory = train_cnn.main(flags(photos, str(tmp_path / "memory"), "--pretrained", network, "--epochs", "1"))
    mapped = train_cnn.main(flags(photos, str(tmp_path / "mapped"), "--pretrained", network, "--epochs", "1",
                                  "--max-image-memory-gb", "0.00001"))
    assert "read from the memory-mapped cache" in capsys.readouterr().out
    assert mapped["test_acc"] == in_memory["test_acc"] and mapped["best_val_acc"] == in_memory["best_val_acc"]
    config = train_cnn.CNNConfig(dataset=photos, pretrained=network, max_image_memory_gb=0.00001, progress=False)
    data = image_data(config, Runtime(torch.device("cpu"), "fp32"))
    assert isinstance(data.train.images, DiskImages)  # a file-backed map, not a copy in memory
    assert isinstance(data.train.images.array, np.memmap)


def test_a_killed_decode_resumes_where_it_stopped(photos, tmp_path, monkeypatch, capsys):
    import utils.image_cache as image_cache
    from data.framing import Framing
    from data.images import find_image_folder, scan_images

    monkeypatch.setenv("IMAGE_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setattr(image_cache, "CHUNK", 4)
    monkeypatch.setattr(image_cache, "COMMIT_EVERY", 2)
    files = find_image_folder(photos)[0]["train"]
    digests, _ = scan_images([path for path, _ in files], headers=False)
    framing = Framing(3, 20, 20, 20)
    decoded: list[str] = []
    real_chunk = image_cache.decode_chunk

    def stopped_after_20_files(paths, *rest):
        if len(decoded) >= 20:
            raise KeyboardInterrupt  # stands for a kill: nothing catches it
        decoded.extend(paths)
        return real_chunk(paths, *rest)
    monkeypatch.setattr(image_cache, "decode_chunk", stopped_after_20_files)
    monkeypatch.setattr(image_cache, "decoding_processes", lambda chunks: 1)
    with pytest.raises(KeyboardInterrupt):
        image_cache.decoded_split(files, digests, framing, False, progress=False)
    assert not [name for name in os.listdir(tmp_path / "cache") if name.endswith(".json") and "partial" not in name]
    decoded.clear()
    monkeypatch.setattr(image_cache, "decode_chunk",
                        lambda paths, *rest: decoded.extend(paths) or real_chunk(paths, *rest))
    images, labels, _ = image_cache.decoded_split(files, digests, framing, False, progress=False)
    assert "resuming the decoding of 48 images at image 16" in capsys.readouterr().out
    assert decoded == [path for path, _ in files[16:]]  # the 16 committed images were not decoded again
    monkeypatch.setenv("IMAGE_CACHE_DIR", str(tmp_path / "fresh"))
    fresh, fresh_labels, _ = image_cache.decoded_split(files, digests, framing, False, progress=False)
    assert torch.equal(images[:], fresh[:]) and torch.equal(labels, fresh_labels)


def test_bad_pretrained_networks_and_flags_are_one_line(network, photos, tmp_path, monkeypatch, capsys):
    not_timm = tmp_path / "not-timm"
    not_timm.mkdir()
    (not_timm / "config.json").write_text(json.dumps({"model_type": "bert"}))
    no_weights = write_tiny_timm(str(tmp_path / "no-weights"), weights=False)
    unknown = write_tiny_timm(str(tmp_path / "unknown"))
    config = json.loads(open(os.path.join(unknown, "config.json")).read())
    open(os.path.join(unknown, "config.json"), "w").write(json.dumps({**config, "architecture": "no_such_net"}))
    cases = {
        "not a timm model: no config.json naming its 'architecture'": ["--pretrained", str(not_timm)],
        "no weights (model.safetensors or pytorch_model.bin)": ["--pretrained", f"local-dir:{no_weights}"],
        "no such folder": ["--pretrained", str(tmp_path / "missing/")],
        "has no architecture 'no_such_net'": ["--pretrained", unknown],
        "reads 3-channel images": ["--pretrained", network, "--channels", "1"],
    }
    for message, extra in cases.items():
        assert_one_error_line(train_cnn.main, flags(photos, str(tmp_path / "run"), *extra), capsys, message)
        assert not os.path.exists(tmp_path / "run")
    assert_one_error_line(train_cnn.main, ["--pretrained", network, "--out-dir", str(tmp_path / "run")], capsys,
                          "--pretrained fine-tunes on your images: give --dataset")
    monkeypatch.setenv("IMAGE_CACHE_DIR", str(tmp_path / "full-disk"))
    monkeypatch.setattr("shutil.disk_usage", lambda path: type("Usage", (), {"free": 1000})())
    assert_one_error_line(train_cnn.main, flags(photos, str(tmp_path / "run"), "--pretrained", network), capsys,
                          "GiB free: free some space, set IMAGE_CACHE_DIR to a larger disk")


def test_a_fine_tuned_network_teaches_the_seed_cnn_at_their_own_resolutions(photos, fine_tuned, tmp_path):
    teacher = json.loads(open(os.path.join(fine_tuned, "summary.json")).read())
    student = train_cnn.main(flags(photos, str(tmp_path / "student"), "--teacher", os.path.join(fine_tuned, "best.pt"),
                                   "--image-size", "20"))
    record = student["teacher"]
    assert record["mode"] == "cached" and record["model_name"] == "timm"
    assert record["test_acc"] == teacher["test_acc"]  # the teacher read the photos as it was trained to
    assert load_checkpoint(str(tmp_path / "student" / "best.pt"))["meta"]["image_size"] == 20


def test_a_bfloat16_file_trains_as_float32_and_a_stopped_run_resumes_exactly(photos, tmp_path):
    from conftest import interrupt_after_commit, same_weights

    network = write_tiny_timm(str(tmp_path / "bf16-net"), dtype="bfloat16")
    straight = train_cnn.main(flags(photos, str(tmp_path / "straight"), "--pretrained", network))
    checkpoint = load_checkpoint(str(tmp_path / "straight" / "best.pt"))
    assert checkpoint["pretrained"]["file_dtype"] == "bfloat16"
    assert all(value.dtype == torch.float32 for value in checkpoint["model"].values() if value.is_floating_point())
    with pytest.MonkeyPatch.context() as interruption:
        interrupt_after_commit(interruption, epoch=1)
        with pytest.raises(SystemExit):
            train_cnn.main(flags(photos, str(tmp_path / "stopped"), "--pretrained", network))
    resumed = train_cnn.main(["--resume", str(tmp_path / "stopped"), "--no-progress"])
    assert resumed["test_acc"] == straight["test_acc"] and resumed["best_val_acc"] == straight["best_val_acc"]
    a, b = (load_checkpoint(str(tmp_path / run / "last.pt")) for run in ("straight", "stopped"))
    assert same_weights(a["model"], b["model"])


def test_a_hub_id_reads_the_hub_cache_offline(photos, tmp_path, monkeypatch):
    import huggingface_hub.constants

    snapshot = tmp_path / "hub" / "models--someone--tiny-net" / "snapshots" / ("0" * 40)
    write_tiny_timm(str(snapshot))
    (tmp_path / "hub" / "models--someone--tiny-net" / "refs").mkdir()
    (tmp_path / "hub" / "models--someone--tiny-net" / "refs" / "main").write_text("0" * 40)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    train_cnn.main(flags(photos, str(tmp_path / "run"), "--pretrained", "someone/tiny-net", "--epochs", "1",
                         "--freeze-backbone"))
    checkpoint = load_checkpoint(str(tmp_path / "run" / "best.pt"))
    assert checkpoint["pretrained"]["source"] == "someone/tiny-net"
    assert torch.equal(checkpoint["model"]["model.conv_stem.weight"],
                       load_file(str(snapshot / "model.safetensors"))["conv_stem.weight"])
