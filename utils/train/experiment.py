"""What every training script does: parse its flags, then train with checkpoints, test the best model
and report (or, with --eval-only, evaluate a checkpoint). The top of the stack: scripts call
`run_script`; the steps of a training run are utils.train.training_run's."""
from __future__ import annotations

import dataclasses
import os
import re
import time
from typing import Any, Callable, Sequence, Union

from data.bundle import kind_of
from models import count_parameters
from utils.config import NO_PRESET, TrainConfig, parse_config
from utils.errors import (CheckpointError, ConfigError, Interrupted, PeerFailed, RunFolderError, one_line,
                          one_line_errors)
from utils.flags import command_line, fields_with
from utils.messages import MESSAGES, show_messages
from utils.report.runs import write_test_report
from utils.runtime import Runtime, init_runtime, peer_failed, seed_everything, shutdown
from utils.storage.checkpoint import check_predictor_checkpoint, load_checkpoint, model_from_checkpoint
from utils.storage.files import save_json
from utils.storage.run_folder import CONFIG, RunFolder, folder_contents, load_saved_config
from utils.train.evaluation import evaluate
from utils.train.training_run import MakeData, run_log, set_up, test_and_report, train_epochs

ModelName = Union[str, Callable[[TrainConfig], str]]  # a fixed model, or one the flags choose


def run_script(config_class: type, description: str, argv: Sequence[str] | None, *, script_name: str,
               model_name: ModelName, make_data: MakeData, presets: dict[str, dict[str, Any]] | None = None
               ) -> dict[str, Any]:
    """Parse `argv` into `config_class`, run the experiment and return its summary.

    Bad input (flags, data, checkpoints), a non-finite loss or an interruption prints one
    `error: ...` line to stderr and exits non-zero (SystemExit) instead of a traceback.
    """
    def run() -> dict[str, Any]:
        config = parse_config(config_class, argv, description, presets, saved_config=load_saved_config)
        return run_experiment(config, script_name, model_name, make_data)
    return one_line_errors(run)


def default_run_dir(script_name: str) -> str:
    """A new folder runs/<script>-<timestamp> (with a suffix if that name is taken)."""
    base = os.path.join("runs", f"{script_name}-{time.strftime('%Y%m%d-%H%M%S')}")
    path, suffix = base, 1
    while os.path.exists(path):
        suffix += 1
        path = f"{base}-{suffix}"
    return path


def cpu_bf16_helps(config: TrainConfig) -> bool:
    """Whether --precision auto may train this model in bf16 on a CPU with native bf16."""
    return config.cpu_bf16_min_batch is not None and config.batch_size >= config.cpu_bf16_min_batch


def run_experiment(config: TrainConfig, script_name: str, model_name: ModelName, make_data: MakeData
                   ) -> dict[str, Any]:
    """Train (or with --eval-only, evaluate) as `config` says; returns the run summary. Its messages go
    to standard output from the main process (utils.messages)."""
    model_name = model_name(config) if callable(model_name) else model_name
    runtime = init_runtime(config.device, config.precision, cpu_bf16_helps(config))
    show_messages(runtime.is_main)
    try:
        seed_everything(config.seed)
        if config.eval_only:
            return evaluate_checkpoint(config, make_data, runtime)
        return train(config, script_name, model_name, make_data, runtime)
    finally:
        shutdown(runtime)


EVAL = "eval.json"  # marks a folder that --eval-only wrote


def default_eval_dir(checkpoint: str) -> str:
    """Where --eval-only reports on `checkpoint` by default: eval-<name> beside it (RUN/eval-best for
    RUN/best.pt), so that the run's own reports are never replaced."""
    stem = os.path.splitext(os.path.basename(checkpoint))[0]
    return os.path.join(os.path.dirname(os.path.abspath(checkpoint)), f"eval-{stem}")


def refuse_unless_eval_folder(path: str) -> None:
    """Raise RunFolderError unless `path` is missing, empty or a folder --eval-only wrote (eval.json):
    a training run's reports, or anyone's files, are never written over."""
    names = folder_contents(path)
    if names and EVAL not in names:
        whose = "a training run's folder" if CONFIG in names else f"not an evaluation folder (it holds {names[0]!r})"
        raise RunFolderError(f"--eval-only does not write into {path}: it is {whose}; choose a new or empty "
                             "--out-dir")


def evaluate_checkpoint(config: TrainConfig, make_data: MakeData, runtime: Runtime) -> dict[str, Any]:
    """Evaluate --checkpoint on the test set and write the report into eval-<name> beside it (or --out-dir)."""
    checkpoint = load_checkpoint(config.checkpoint)
    check_predictor_checkpoint(checkpoint, config.checkpoint)
    if not isinstance(checkpoint.get("config"), dict):
        raise CheckpointError(f"{config.checkpoint} is not a checkpoint of this repository: it has no config")
    if kind_of(checkpoint["task"]) != kind_of(config.task):
        raise ConfigError(f"{config.checkpoint} is a {checkpoint['task']} checkpoint, not {config.task}")
    # data settings (label set, split) come from the run that made the checkpoint; where to look
    # and how to compute come from this command line
    command_line_only = fields_with(type(config), "command_line_only")  # where to look, how to compute
    saved = {key: value for key, value in checkpoint["config"].items()
             if key in vars(config) and key not in command_line_only}
    data = make_data(dataclasses.replace(config, **saved), runtime, checkpoint["meta"])
    model = model_from_checkpoint(checkpoint, runtime.device, config.checkpoint)
    out_dir = config.out_dir or default_eval_dir(config.checkpoint)
    if runtime.is_main:
        refuse_unless_eval_folder(out_dir)
    with RunFolder(out_dir, writer=runtime.is_main, claim=False):  # one evaluation at a time writes there
        test = evaluate(model, data.test, runtime, collect=True)
        summary = {"checkpoint": config.checkpoint, "test_loss": test["loss"], "test_acc": test["acc"],
                   "num_params": count_parameters(model), "device": str(runtime.device)}
        if runtime.is_main:
            save_json(os.path.join(out_dir, "eval.json"), summary)
            MESSAGES.info(write_test_report(out_dir, test, data))
            MESSAGES.info(f"test accuracy {test['acc']:.4f} (loss {test['loss']:.4f}) of {config.checkpoint}")
    return summary


def peer_failure_words(error: BaseException) -> str:
    """The gist of a broken collective's error, without the backend's source location."""
    return re.sub(r"^\[[^\]]*\]\s*", "", one_line(error))[:100]


def restart_command(config: TrainConfig, script_name: str, run_dir: str) -> str:
    """The command that starts the run of `config` afresh in `run_dir`: every setting given as a flag."""
    left_out = fields_with(type(config), "command_line_only") - {"data_dir", "source", "out_dir"}
    command = command_line(type(config), {**dataclasses.asdict(config), "out_dir": run_dir}, {},
                           f"train_{script_name}.py", left_out=sorted(left_out))
    return f"{command} --preset {NO_PRESET}" if config.preset else command


def train(config: TrainConfig, script_name: str, model_name: str, make_data: MakeData, runtime: Runtime
          ) -> dict[str, Any]:
    """The training run proper, in a locked run folder; see utils.train.training_run."""
    run_dir = config.resume or config.out_dir or default_run_dir(script_name)
    with RunFolder(run_dir, writer=runtime.is_main) as folder:
        saved_script = folder.saved_config().get("script", script_name) if config.resume else script_name
        if saved_script != script_name:
            raise ConfigError(f"{run_dir} is a run of train_{saved_script}.py: resume it with "
                              f"python train_{saved_script}.py --resume {run_dir}")
        if config.resume and not folder.has_commit():
            raise RunFolderError(f"{run_dir} has no completed epoch yet, so there is nothing to resume; start it again "
                                 f"with: {restart_command(config, script_name, run_dir)}")
        resumed = folder.open(resume=bool(config.resume))
        for note in folder.notes:
            MESSAGES.info(note)
        run = None

        def where_it_stands() -> str:
            return run.describe_stop() if run else folder.describe(resumed["epoch"] if resumed else 0, script_name)
        phase = "while setting up the run"  # reading the data, the teacher labelling it
        try:
            run, schedule = set_up(config, script_name, model_name, make_data, runtime, folder, resumed)
            folder.save_config({**run.identity.config, "script": script_name})  # first write: the folder is this run's
            log = run_log(run)
            phase = "while training"
            outcome, wall_seconds = train_epochs(run, schedule, log)
            phase = "during the final test"
            summary = test_and_report(run, outcome, wall_seconds)
        except KeyboardInterrupt as stop:
            raise Interrupted(f"interrupted {phase} ({str(stop) or 'Ctrl-C'}); {where_it_stands()}") from None
        except RuntimeError as error:
            if not (runtime.distributed and peer_failed(error)):
                raise
            raise PeerFailed(f"another process of this run failed {phase}, so this one stops too "
                             f"({peer_failure_words(error)}); {where_it_stands()}") from None
        log.finish(vars(config), {"best_val_acc": summary["best_val_acc"], "test_acc": summary["test_acc"]})
        log.close()
        return summary
