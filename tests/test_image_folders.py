"""--dataset DIR for the image scripts: class folders with or without split folders, any format, mode
and size; the decode cache; predict and export on such models; every bad folder in one line."""
from __future__ import annotations

import os

import numpy as np
import pytest
from PIL import Image

import export
import predict
import train_cnn
import train_dnn
from conftest import assert_one_error_line, saved_accuracy
from data.framing import fit_image
from data.images import find_image_folder, image_array, scan_images
from utils.serve.inputs import read_image
from utils.storage.checkpoint import load_checkpoint

COLOURS = {"red": (200, 40, 40), "green": (40, 200, 40), "blue": (40, 40, 200)}
FORMATS = ("png", "jpg", "gif", "bmp", "webp", "tiff")


def write_image_folder(root, per_class: int = 24, splits: tuple[str, ...] = ("train",), gray: bool = False,
                       sizes: tuple[tuple[int, int], ...] = ((20, 16), (26, 24), (32, 16))) -> str:
    """Class folders of small images in every format, of several sizes and modes: a colour (or a gray
    level) per class, so that a model can learn them."""
    rng = np.random.default_rng(0)
    for split in splits:
        for number, (name, rgb) in enumerate(COLOURS.items()):
            folder = os.path.join(root, split, name) if splits != ("",) else os.path.join(root, name)
            os.makedirs(folder, exist_ok=True)
            for i in range(per_class):
                width, height = sizes[i % len(sizes)]
                shade = rng.uniform(0.7, 1.0, (height, width, 1))
                pixels = (np.array(rgb)[None, None] * shade).astype(np.uint8)
                image = Image.fromarray(pixels, "RGB")
                if gray:
                    image = Image.fromarray((60 + 80 * number * shade[..., 0]).astype(np.uint8), "L")
                elif i % 7 == 3:
                    image = image.convert("RGBA")
                fmt = FORMATS[i % len(FORMATS)] if not gray else ("png", "jpg", "gif", "bmp", "tiff")[i % 5]
                if fmt == "gif":
                    image = image.convert("P" if not gray else "L")
                if fmt in ("jpg", "bmp") and image.mode == "RGBA":
                    image = image.convert("RGB")
                image.save(os.path.join(folder, f"{i}.{fmt}"))
    return str(root)


def args(dataset: str, out: str, *extra: str) -> list[str]:
    return ["--dataset", dataset, "--out-dir", out, "--epochs", "2", "--batch-size", "16", "--no-progress",
            "--no-tensorboard", *extra]


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    root = tmp_path_factory.mktemp("images")
    return {"split": write_image_folder(root / "split", splits=("train", "test")),
            "flat": write_image_folder(root / "flat", splits=("",)),
            "gray": write_image_folder(root / "gray", splits=("",), gray=True, sizes=((12, 12),))}


def test_a_folder_with_split_folders_trains_predicts_and_exports(folders, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("IMAGE_CACHE_DIR", str(tmp_path / "cache"))
    out = str(tmp_path / "run")
    summary = train_cnn.main(args(folders["split"], out, "--epochs", "4", "--lr", "3e-3"))
    said = capsys.readouterr().out
    assert "3 classes, 66 training / 6 validation / 72 test images of 3x32x32" in said  # mixed sizes: 32
    assert summary["test_acc"] > 0.9
    best = load_checkpoint(os.path.join(out, "best.pt"))
    assert best["task"] == "image" and best["class_names"] == sorted(COLOURS)
    assert best["meta"]["channels"] == 3 and len(best["meta"]["mean"]) == 3
    assert best["model_kwargs"]["in_channels"] == 3 and os.path.isfile(os.path.join(out, "mistakes.png"))

    red = os.path.join(folders["split"], "test", "red")
    assert predict.main([os.path.join(out, "best.pt"), "--json", red]) == 0
    rows = capsys.readouterr().out.splitlines()
    assert len(rows) == 24 and sum('"label": "red"' in row for row in rows) >= 20
    assert export.main([os.path.join(out, "best.pt"), "--out", str(tmp_path / "model.onnx")]) == 0
    assert f"checked on 144 images of {folders['split']}, batch shapes" in capsys.readouterr().out  # the run's data
    assert predict.main([str(tmp_path / "model.onnx"), os.path.join(red, "0.png")]) == 0
    assert capsys.readouterr().out.split(": ")[1].startswith("red")


def cache_files(folder) -> list[str]:
    """The pixel files of the decoded-image cache in `folder` (one per split decoded)."""
    return sorted(name for name in os.listdir(folder) if name.endswith(".npy"))


def test_gray_images_of_one_size_keep_it_and_a_second_run_reads_the_cache(folders, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("IMAGE_CACHE_DIR", str(tmp_path / "cache"))
    first = train_dnn.main(args(folders["gray"], str(tmp_path / "a"), "--hidden1-size", "16", "--hidden2-size", "8"))
    assert "of 1x12x12" in capsys.readouterr().out and len(cache_files(tmp_path / "cache")) == 1
    model_kwargs = load_checkpoint(str(tmp_path / "a" / "best.pt"))["model_kwargs"]
    assert model_kwargs["in_channels"] == 1 and model_kwargs["image_size"] == 12
    monkeypatch.setattr("data.framing.open_image", lambda path: pytest.fail("the cache was not read"))
    second = train_dnn.main(args(folders["gray"], str(tmp_path / "b"), "--hidden1-size", "16", "--hidden2-size", "8"))
    assert second["test_acc"] == first["test_acc"]  # same images, same split, same numbers


def test_flags_choose_channels_and_size_and_a_flat_folder_holds_out_val_and_test(folders, tmp_path, capsys):
    summary = train_cnn.main(args(folders["flat"], str(tmp_path / "run"), "--channels", "1", "--image-size", "16",
                                  "--test-fraction", "0.25", "--val-fraction", "0.2"))
    said = capsys.readouterr().out
    assert "18 of the training images held out for the test" in said and "of 1x16x16" in said
    assert summary["test_acc"] == saved_accuracy(str(tmp_path / "run"))


def test_images_of_any_mode_become_the_asked_channels_and_fit_whole():
    for mode in ("L", "LA", "RGB", "RGBA", "P", "CMYK", "I;16", "F", "1"):
        image = Image.new(mode, (30, 10))
        for channels in (1, 3):
            array = fit_image(image_array(image, channels), 16, 16)
            assert array.shape == (channels, 16, 16) and array.dtype == np.uint8
    wide = np.full((1, 10, 30), 255, dtype=np.uint8)
    fitted = fit_image(wide, 12, 12)
    assert fitted[0, 6].all() and not fitted[0, 0].any()  # the whole image, centred, black above


def bad_folders(root, good: str) -> dict[str, tuple[str, list[str]]]:
    """(folder, extra flags) of each bad case, by the words its error line must hold."""
    (root / "empty" / "a").mkdir(parents=True)
    one = write_image_folder(root / "one", splits=("",))
    for name in ("green", "blue"):
        for file in os.listdir(os.path.join(one, name)):
            os.remove(os.path.join(one, name, file))
    broken = write_image_folder(root / "broken", splits=("",))
    with open(os.path.join(broken, "red", "0.png"), "r+b") as file:
        file.truncate(40)
    bomb = write_image_folder(root / "bomb", splits=("",), per_class=6)
    Image.new("1", (14000, 14000)).save(os.path.join(bomb, "red", "huge.png"))  # 196 megapixels in a few KB
    twice = write_image_folder(root / "twice", splits=("train", "val", "valid"), per_class=6)
    unseen = write_image_folder(root / "unseen", splits=("train", "test"), per_class=6)
    os.rename(os.path.join(unseen, "test", "blue"), os.path.join(unseen, "test", "purple"))
    return {"no images in class folders": (str(root / "empty"), []),
            "only one class ('red')": (one, []),
            "cannot read image": (broken, []),
            "huge.png' has more than the 40,000,000 pixels": (bomb, []),
            "both val/ and valid/ look like the val split": (twice, []),
            "the test split has classes the training split lacks: purple": (unseen, []),
            "no such folder": (str(root / "nowhere"), []),
            "--dataset no_such_photos/: no such folder": ("no_such_photos/", []),  # relative: no hub id either
            f"--test-dataset {root / 'lost'}: no such folder": (good, ["--test-dataset", str(root / "lost")]),
            "--image-size is for your own --dataset, not --dataset fashion_mnist": ("fashion_mnist", ["--image-size", "16"])}


def test_every_bad_folder_is_one_line_and_writes_nothing(folders, tmp_path, capsys):
    for message, (folder, flags) in bad_folders(tmp_path, folders["flat"]).items():
        out = tmp_path / "run"
        assert_one_error_line(train_cnn.main, args(folder, str(out), *flags), capsys, message)
        assert not out.exists()


def test_skip_bad_files_leaves_them_out_with_a_note(tmp_path, capsys):
    folder = write_image_folder(tmp_path / "broken", splits=("",))
    with open(os.path.join(folder, "red", "0.png"), "r+b") as file:
        file.truncate(40)
    train_cnn.main(args(folder, str(tmp_path / "run"), "--skip-bad-files", "--epochs", "1"))
    assert "skipped 1 unreadable image file(s)" in capsys.readouterr().out
    files, names = find_image_folder(folder)
    assert names == sorted(COLOURS) and len(files["train"]) == 72


def test_a_saved_hugging_face_dataset_of_images_trains(tmp_path, capsys):
    import datasets

    rng = np.random.default_rng(0)
    images = [Image.fromarray((rng.uniform(0, 90, (20, 18)) + 150 * (i % 2)).astype(np.uint8), "L") for i in range(80)]
    features = datasets.Features({"picture": datasets.Image(), "label": datasets.ClassLabel(names=["dark", "light"])})
    saved = datasets.Dataset.from_dict({"picture": images + [None], "label": [i % 2 for i in range(81)]},
                                       features=features)  # one example without its image
    parts = saved.train_test_split(0.25, seed=0)
    parts.save_to_disk(str(tmp_path / "saved"))
    summary = train_cnn.main(args(str(tmp_path / "saved"), str(tmp_path / "run"), "--epochs", "3"))
    said = capsys.readouterr().out
    split_of_none = "train" if None in parts["train"]["picture"] else "test"
    assert f"skipped 1 {split_of_none} example(s) of {tmp_path / 'saved'} without an image" in said
    assert "2 classes, 54 training / 6 validation / 20 test images of 1x20x18" in said
    assert load_checkpoint(str(tmp_path / "run" / "best.pt"))["class_names"] == ["dark", "light"]
    assert summary["test_acc"] > 0.9


def test_a_hugging_face_image_label_the_training_split_lacks_is_one_line(tmp_path, capsys):
    import datasets

    images = [Image.new("L", (8, 8), 40 * (i % 3)) for i in range(16)]
    datasets.DatasetDict({"train": datasets.Dataset.from_dict({"image": images[:12], "label": ["a", "b", "c"] * 4}),
                          "test": datasets.Dataset.from_dict({"image": images[12:], "label": ["a", "zzz"] * 2})}
                         ).cast_column("image", datasets.Image()).save_to_disk(str(tmp_path / "saved"))
    assert_one_error_line(train_cnn.main, args(str(tmp_path / "saved"), str(tmp_path / "run")), capsys,
                          "the test split has labels the training split lacks: zzz")
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("train,val,test", [("training", "validation", "testing"), ("train", "valid", "Test"),
                                            ("Train", "dev", "test")])
def test_split_folders_read_as_people_name_them_and_hidden_files_are_no_data(train, val, test, tmp_path, capsys):
    root = write_image_folder(tmp_path / "photos", splits=(train, val, test), per_class=6)
    for junk in (os.path.join(root, train, ".thumbnails"), os.path.join(root, "__MACOSX", train, "red")):
        os.makedirs(junk)
        Image.new("RGB", (8, 8)).save(os.path.join(junk, "x.png"))
    Image.new("RGB", (8, 8)).save(os.path.join(root, train, "red", "._0.png"))  # what macOS copies leave
    os.mkfifo(os.path.join(root, train, "red", "pipe.png"))  # opening it would wait forever
    train_cnn.main(args(root, str(tmp_path / "run"), "--epochs", "1"))
    said = capsys.readouterr().out
    assert f"{train}/ as the train split, {val}/ as the val split, {test}/ as the test split" in said
    assert "3 classes, 18 training / 18 validation / 18 test images" in said
    assert load_checkpoint(str(tmp_path / "run" / "best.pt"))["class_names"] == sorted(COLOURS)


def test_exif_orientation_is_applied_where_images_are_read(tmp_path):
    pixels = np.zeros((10, 30), dtype=np.uint8)
    pixels[:, :5] = 255  # a bright band on the left of the picture as the camera stored it
    exif = Image.Exif()
    exif[0x0112] = 6  # the camera was held rotated: show it turned 90 degrees clockwise
    Image.fromarray(pixels, "L").save(tmp_path / "phone.jpg", exif=exif, quality=100)
    upright = read_image(str(tmp_path / "phone.jpg"), {"channels": 1, "image_size": [30, 10]}, "image")
    assert upright.shape == (1, 30, 10) and upright[0, :5].mean() > 200 and upright[0, -5:].mean() < 50
    assert scan_images([str(tmp_path / "phone.jpg")])[1] == [(True, (10, 30))]  # its size as it stands


def test_the_decode_cache_follows_the_files_contents_and_refuses_a_damaged_copy(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("IMAGE_CACHE_DIR", str(tmp_path / "cache"))
    folder = write_image_folder(tmp_path / "photos", splits=("",), per_class=8)
    flags = ("--epochs", "1", "--channels", "3", "--image-size", "12", "--augment", "--crop-padding", "0")
    first = train_cnn.main(args(folder, str(tmp_path / "first"), *flags))
    (cached,) = cache_files(tmp_path / "cache")
    with open(tmp_path / "cache" / cached, "r+b") as file:  # 64 bytes of the kept pixels flipped
        file.seek(os.path.getsize(tmp_path / "cache" / cached) // 2)
        middle = file.read(64)
        file.seek(-64, os.SEEK_CUR)
        file.write(bytes(255 - byte for byte in middle))
    capsys.readouterr()
    again = train_cnn.main(args(folder, str(tmp_path / "again"), *flags))
    assert "is damaged: decoding the images again" in capsys.readouterr().out
    assert again["test_acc"] == first["test_acc"]
    picture = os.path.join(folder, "red", "0.png")  # edited in place, its modification time kept (exiftool -P)
    times = os.stat(picture)
    Image.new("RGB", (20, 16), (0, 0, 255)).save(picture)
    os.utime(picture, ns=(times.st_atime_ns, times.st_mtime_ns))
    assert_one_error_line(train_cnn.main, ["--resume", str(tmp_path / "first"), "--epochs", "2"], capsys,
                          "on other data than this run reads")
    assert len(cache_files(tmp_path / "cache")) == 2  # the edited folder was decoded anew
