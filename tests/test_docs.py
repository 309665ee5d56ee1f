"""The README and docs/: short front page, generated results up to date, every documented command
accepted by the script it names, and no text about how the project was developed."""
from __future__ import annotations

import glob
import importlib
import os
import re
import shlex
import sys

import pytest

from conftest import ROOT

DOCUMENTS = [os.path.join(ROOT, "README.md"), *sorted(glob.glob(os.path.join(ROOT, "docs", "*.md")))]
sys.path.insert(0, os.path.join(ROOT, "bench"))


def test_the_readme_is_a_front_page():
    assert sum(1 for _ in open(os.path.join(ROOT, "README.md"), encoding="utf-8")) <= 250


def test_the_generated_results_are_up_to_date():
    import summary

    document = "\n".join(summary.results_document()).rstrip() + "\n"
    assert open(summary.RESULTS_DOC, encoding="utf-8").read() == document, "run python bench/summary.py"
    readme = open(summary.README, encoding="utf-8").read()
    assert summary.readme_with_blocks(readme) == readme, "run python bench/summary.py"


def documented_commands() -> list[tuple[str, list[str]]]:
    """(document, words) of every `python ...` or `torchrun ...` line in the documents' code blocks."""
    commands = []
    for path in DOCUMENTS:
        text = open(path, encoding="utf-8").read().replace("\\\n", " ")
        for block in re.findall(r"```(?:sh|bash)?\n(.*?)```", text, flags=re.S):
            for line in block.splitlines():
                words = shlex.split(line.removeprefix("$ "), comments=True)
                if words and words[0] == "torchrun":  # its own options, then the script and the script's
                    script = next(i for i, word in enumerate(words) if word.endswith(".py"))
                    words = ["python", *words[script:]]
                if words[:1] == ["python"] and len(words) > 1:
                    commands.append((os.path.relpath(path, ROOT), words[1:]))
    return commands


def test_the_documents_show_commands():
    assert len(documented_commands()) > 30


@pytest.mark.parametrize("document,words", documented_commands(), ids=lambda value: " ".join(value)[:60]
                         if isinstance(value, list) else value)
def test_every_documented_command_names_a_script_and_flags_it_accepts(document, words):
    from utils.flags import build_parser

    if words[:2] == ["-m", "pytest"]:
        return
    if words[0] == "-m":
        module, argv = words[1], words[2:]
        source = os.path.join(ROOT, *module.split(".")) + ("/cli.py" if module == "utils.report" else ".py")
        flags = [word.split("=")[0] for word in argv if word.startswith("--")]
        assert os.path.isfile(source), f"{document}: no module {module}"
        assert all(flag in open(source).read() for flag in flags), f"{document}: {words}"
        return
    script, argv = words[0], words[1:]
    assert os.path.isfile(os.path.join(ROOT, script)), f"{document}: no script {script}"
    name = os.path.splitext(os.path.basename(script))[0]
    if script.startswith("train_"):
        module = importlib.import_module(name)
        config_class = next(value for key, value in vars(module).items() if key.endswith("Config") and
                            getattr(value, "__module__", "") == module.__name__)
        build_parser(config_class, "").parse_args(argv)
    elif script in ("predict.py", "export.py", "serve.py"):
        importlib.import_module(name).parse_args(argv)
    else:  # a benchmark: its flags must be among those it declares
        source = open(os.path.join(ROOT, script), encoding="utf-8").read()
        own = argv[:argv.index("--")] if "--" in argv else argv  # after "--": the training script's flags
        for flag in (word.split("=")[0] for word in own if word.startswith("--")):
            assert f'"{flag}"' in source, f"{document}: {script} has no flag {flag}"


HISTORY = re.compile(r"\b(work )?sessions?\b(?! *=)|\bissue #?\d+|\buntil (day|session)|\bwe (tried|stopped)\b|"
                     r"\bI (stopped|ran|tried|measured)\b|\blent\b|\bthis (session|day)\b", re.I)


def test_no_document_speaks_of_how_the_project_was_developed():
    found = [(os.path.relpath(path, ROOT), line.strip()[:80]) for path in DOCUMENTS
             for line in open(path, encoding="utf-8") if HISTORY.search(line)]
    assert found == []


def test_no_comment_or_result_name_speaks_of_how_the_project_was_developed():
    found = []
    for path in glob.glob(os.path.join(ROOT, "**", "*.py"), recursive=True):
        if "/runs/" in path or "/.git/" in path:
            continue
        for line in open(path, encoding="utf-8"):  # code, comments and docstrings alike
            if re.search(r"\bsessions? \d+|\bissue #?\d+|\buntil session", line, re.I):
                found.append((os.path.relpath(path, ROOT), line.strip()[:80]))
    names = [name for name in os.listdir(os.path.join(ROOT, "bench", "results"))
             if re.search(r"(-s\d+|before-|session)", name)]
    assert found == [] and names == []


# an absolute path of some machine (a leading / and two or more names), not a URL's path nor ~/...
ABSOLUTE_PATH = re.compile(r"(?<![\w.:/~-])/(?:[\w.+-]+/)+[\w.+-]*")
SYSTEM_PATHS = ("/usr/share/", "/dev/", "/etc/")  # the same on every machine that has them


def test_documents_and_results_hold_no_machine_paths():
    texts = DOCUMENTS + sorted(glob.glob(os.path.join(ROOT, "bench", "results", "*.json")))
    found = {os.path.relpath(path, ROOT): paths for path in texts
             if (paths := sorted({p for p in ABSOLUTE_PATH.findall(open(path, encoding="utf-8").read())
                                  if not p.startswith(SYSTEM_PATHS)}))}
    assert found == {}, "write ../shared/... or a path relative to the repository (runs/..., user-data/...)"
