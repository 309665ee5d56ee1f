"""The code's own shape, read from its source: no import circles, data/ and models/ below utils/,
`transformers` and timm loaded at their one edge, small files and small signatures."""
from __future__ import annotations

import ast
import os

from conftest import ROOT

PACKAGES = ("data", "models", "utils", "bench", "tests")
MAX_LINES = 250
# loading pretrained files; building the architecture; writing a fine-tuned model as transformers' files;
# the benchmark that measures Hugging Face's Trainer against this project's fine-tuning
TRANSFORMERS_EDGE = {"utils.pretrained", "models.transformer", "utils.serve.hf_export", "utils.serve.timm_export",
                     "bench.baselines"}
TIMM_EDGE = {"models.timm_net"}  # building timm networks; reading their folders needs only json and safetensors


def source_files() -> dict[str, str]:
    """Module name -> path of every Python file of the project."""
    modules = {}
    for folder, _, names in os.walk(ROOT):
        relative = os.path.relpath(folder, ROOT)
        if relative != "." and relative.split(os.sep)[0] not in PACKAGES:
            continue
        for name in names:
            if name.endswith(".py"):
                parts = ([] if relative == "." else relative.split(os.sep)) + [name[:-3]]
                modules[".".join(part for part in parts if part != "__init__")] = os.path.join(folder, name)
    return modules


def imported_names(path: str) -> set[str]:
    """Every module name an import statement of the file names, at any depth (also inside functions)."""
    names = set()
    for node in ast.walk(ast.parse(open(path, encoding="utf-8").read())):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names |= {node.module} | {f"{node.module}.{alias.name}" for alias in node.names}
    return names


def project_imports() -> dict[str, set[str]]:
    """Module -> the project modules it imports."""
    modules = source_files()
    return {module: {name for name in imported_names(path) if name in modules and name != module}
            for module, path in modules.items()}


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The import circles of `graph`: each path that comes back to where it started (depth-first)."""
    found, state = [], {}

    def visit(module: str, path: list[str]) -> None:
        state[module] = "open"
        for target in sorted(graph.get(module, ())):
            if state.get(target) == "open":
                found.append(path[path.index(target):] + [target])
            elif target not in state:
                visit(target, path + [target])
        state[module] = "done"

    for module in sorted(graph):
        if module not in state:
            visit(module, [module])
    return found


def test_no_import_circles():
    assert cycles(project_imports()) == []


def test_the_cycle_finder_finds_a_circle():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c", "a"]]


def test_data_and_models_never_import_utils():
    wrong = {module: sorted(name for name in names if name.split(".")[0] == "utils")
             for module, names in project_imports().items() if module.split(".")[0] in ("data", "models")}
    assert {module: names for module, names in wrong.items() if names} == {}


def test_transformers_is_imported_at_its_edge_only():
    modules = source_files()
    users = {module for module, path in modules.items() if module.split(".")[0] != "tests"
             and any(name.split(".")[0] == "transformers" for name in imported_names(path))}
    assert users <= TRANSFORMERS_EDGE, users - TRANSFORMERS_EDGE


def test_timm_is_imported_at_its_edge_only():
    modules = source_files()
    users = {module for module, path in modules.items() if module.split(".")[0] != "tests"
             and any(name.split(".")[0] == "timm" for name in imported_names(path))}
    assert users == TIMM_EDGE


def test_no_source_file_is_long():
    long = {module: lines for module, path in source_files().items()
            if (lines := sum(1 for _ in open(path, encoding="utf-8"))) > MAX_LINES}
    assert long == {}


def parameter_counts(path: str) -> dict[str, int]:
    """Function name -> how many parameters it takes (self and cls not counted), of every function in the file."""
    counts = {}
    for node in ast.walk(ast.parse(open(path, encoding="utf-8").read())):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            args = node.args
            names = [a.arg for a in args.posonlyargs + args.args + args.kwonlyargs] + \
                [a.arg for a in (args.vararg, args.kwarg) if a]
            counts[node.name] = len([name for name in names if name not in ("self", "cls")])
    return counts


def test_no_function_of_data_or_utils_takes_more_than_eight_parameters():
    many = {f"{module}.{name}": count for module, path in source_files().items()
            if module.split(".")[0] in ("data", "utils")
            for name, count in parameter_counts(path).items() if count > 8}
    assert many == {}
