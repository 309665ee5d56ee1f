"""FashionMNIST recipe sweeps on one GPU: many single-GPU training processes at once, deadline-guarded.

    OUT=folder python bench/gpu_sweep.py recipes [DEADLINE_S]
    OUT=folder python bench/gpu_sweep.py teacher [DEADLINE_S] [TEACHER_DEADLINE_S]
    OUT=folder python bench/gpu_sweep.py distill [DEADLINE_S] [TEACHER_DEADLINE_S]
    OUT=folder python bench/gpu_sweep.py students DEADLINE_S TEACHER VARIANT...

`recipes`: ResNet variants sized to train in under 30 minutes on 2 CPU cores (seed 0, validation
with and without flip averaging), the seed CNN's default recipe with random erasing and/or a
weight average, the MLP with and without a weight average; then 3 seeds of the ResNet chosen on
validation and seed-CNN students of its best.pt. Writes $OUT/sweep.json.

`teacher`: ResNet-20 for 60 epochs at batch 512 (with and without random erasing), then seed-CNN
students (budget recipe at batch 256) with and without the better one as teacher, 3 seeds each;
students start at TEACHER_DEADLINE_S with the best finished teacher, else $SWEEP_FALLBACK_TEACHER.
Writes $OUT/sweep2.json.

`distill`: `--preset best` with seeds 0, 1, 2, then seed-CNN students of seed 0's best.pt (declared
the teacher in advance), 3 seeds each of: no teacher, a=0.9 T=4, a=1 T=1, all 50 epochs of the
budget recipe at batch 256; they start when that teacher is done (at the latest TEACHER_DEADLINE_S).
Writes $OUT/sweep3.json, teachers.tar and one students-<variant>.tar of best.pt files per variant.

`students`: 3 seeds of each named PATIENT_STUDENTS variant with that teacher. Writes $OUT/sweep4.json
and the students' tar files.

Everything still running at DEADLINE_S is killed; the JSON is rewritten after every event. Data:
$SWEEP_DATA (default ../shared/data); $SWEEP_EXTRA adds flags to every run (e.g. for a dry run).
bench/results/gpu-sweep-fashion-mnist.json and gpu-sweep-teacher.json hold the H200 runs of the README,
gpu-sweep-distill.json the H100 runs of `distill` and `students`.
"""
import os
import shutil
import subprocess
import sys

import torch

sys.path.insert(0, os.getcwd())
from sweep import DATA, OUT, Sweep  # noqa: E402  (bench/ is on the path when this file runs)

VAL = int(os.environ.get("SWEEP_VAL", "5000"))
DEVICE = "cuda" if torch.cuda.is_available() else "cpu"

SGD = ["--optimizer", "sgd", "--nesterov", "--lr", "0.1", "--weight-decay", "5e-4", "--scheduler", "cosine",
       "--warmup-epochs", "0.5", "--batch-size", "128"]
RES = ["--model", "resnet", "--tta", "--channels-last"]
RESNET = {
    "r20_e8_sgd_re5": RES + SGD + ["--depth", "20", "--epochs", "8", "--random-erasing", "0.5"],
    "r20_e8_sgd_re5_ema": RES + SGD + ["--depth", "20", "--epochs", "8", "--random-erasing", "0.5", "--ema", "0.998"],
    "r20_e8_sgd_re0": RES + SGD + ["--depth", "20", "--epochs", "8"],
    "r20_e8_adamw_re5": RES + ["--depth", "20", "--epochs", "8", "--random-erasing", "0.5", "--batch-size", "128",
                               "--lr", "3e-3", "--scheduler", "onecycle"],
    "r14_e12_sgd_re5": RES + SGD + ["--depth", "14", "--epochs", "12", "--random-erasing", "0.5"],
    "r8_e24_sgd_re5": RES + SGD + ["--depth", "8", "--epochs", "24", "--random-erasing", "0.5"],
    "r14_e12_sgd_re5_ema": RES + SGD + ["--depth", "14", "--epochs", "12", "--random-erasing", "0.5", "--ema", "0.998"],
}
CNN = {
    "cnn_default": [],
    "cnn_re25": ["--random-erasing", "0.25"],
    "cnn_ema": ["--ema", "0.999"],
    "cnn_re25_ema": ["--random-erasing", "0.25", "--ema", "0.999"],
}
DNN = {"dnn_default": [], "dnn_ema": ["--ema", "0.999"]}
TEACHER = ["--model", "resnet", "--tta", "--channels-last", "--optimizer", "sgd", "--nesterov", "--lr", "0.2",
           "--weight-decay", "5e-4", "--scheduler", "cosine", "--warmup-epochs", "2", "--batch-size", "512",
           "--epochs", "60", "--depth", "20"]
TEACHERS = {"t_re5": TEACHER + ["--random-erasing", "0.5"], "t_re0": TEACHER}
# the budget recipe as these students ran it (with the 2-pixel crop and dropout 0.25 it had then)
STUDENT = ["--preset", "budget", "--crop-padding", "2", "--dropout", "0.25", "--batch-size", "256"]
PATIENT_STUDENTS = {
    "plain50": STUDENT + ["--epochs", "50"],
    "kd50_a09_t4": STUDENT + ["--epochs", "50", "--distill-weight", "0.9", "--temperature", "4"],
    "kd50_a1_t1": STUDENT + ["--epochs", "50", "--distill-weight", "1", "--temperature", "1"],
    "kd50_a1_t2": STUDENT + ["--epochs", "50", "--distill-weight", "1", "--temperature", "2"],
    "kd50_a05_t1": STUDENT + ["--epochs", "50", "--distill-weight", "0.5", "--temperature", "1"],
    # without the budget preset's dropout 0.25, which the 50-epoch default dropped (better on validation)
    "plain50_drop0": STUDENT + ["--epochs", "50", "--dropout", "0"],
    "kd50_a05_t1_drop0": STUDENT + ["--epochs", "50", "--dropout", "0", "--distill-weight", "0.5",
                                    "--temperature", "1"],
    # the script's own 50-epoch default (batch 64, no batch norm, no dropout, 1-pixel crop):
    # 0.9398 +- 0.0017 alone on the CPU
    "default50": [],
    "kd_default50_a05_t1": ["--distill-weight", "0.5", "--temperature", "1"],
}


def flip_average_check(run_dir: str) -> dict[str, float]:
    """Validation accuracy (seed-0 split) of a run's best.pt with and without flip averaging."""
    from data.builtin import fashion_mnist_bundle
    from data.bundle import Batching, ImageSpec
    from data.examples import Holdout
    from utils.storage.checkpoint import load_checkpoint, model_from_checkpoint
    from utils.train.evaluation import evaluate
    from utils.runtime import Runtime
    model = model_from_checkpoint(load_checkpoint(f"{run_dir}/best.pt"), DEVICE)
    bundle = fashion_mnist_bundle(DATA, Batching(128, 1000, device=torch.device(DEVICE)),
                                  ImageSpec(channels_last=True), Holdout(val_size=VAL))
    accuracies = {}
    for flag in (False, True):
        model.flip_average = flag
        runtime = Runtime(torch.device(DEVICE), "fp32")
        accuracies["tta" if flag else "plain"] = evaluate(model, bundle.val, runtime)["acc"]
    return accuracies


def recipes(deadline: float) -> None:
    """The `recipes` sweep (see the module docstring)."""
    sweep = Sweep("sweep", deadline)
    resnets = [sweep.launch(f"{name}_s0", "cnn", args) for name, args in RESNET.items()]
    others = [sweep.launch(f"{name}_s0", "cnn", args) for name, args in CNN.items()]
    others += [sweep.launch(f"{name}_s{seed}", "cnn", CNN[name] + ["--seed", str(seed)])
               for name in ("cnn_default", "cnn_re25_ema") for seed in (1, 2)]
    others += [sweep.launch(f"{name}_s{seed}", "dnn", args + ["--seed", str(seed)]) for name, args in DNN.items()
               for seed in (0, 1, 2)]
    sweep.wait(resnets, deadline * 0.45)
    checks = {}
    for run in resnets:
        try:
            checks[run] = flip_average_check(f"{sweep.runs_dir}/{run}")
        except Exception as error:  # an unfinished run has no best.pt yet
            checks[run] = {"error": repr(error)[:200]}
    sweep.results["tta"] = checks
    scored = {run: max(accs.values()) for run, accs in checks.items() if "error" not in accs}
    teacher, later = "", []
    if scored:
        best = max(scored, key=scored.get)
        use_tta = checks[best]["tta"] > checks[best]["plain"]
        args = [a for a in RESNET[best[:-3]] if a != "--tta"] + (["--tta"] if use_tta else [])
        sweep.results["chosen_resnet"] = {"run": best, "tta": use_tta, "args": args}
        teacher = f"{sweep.runs_dir}/{best}/best.pt"
        later = [sweep.launch(f"best_s{seed}", "cnn", args + ["--seed", str(seed)]) for seed in (0, 1, 2)]
        later += [sweep.launch(f"student_s{seed}", "cnn", ["--teacher", teacher, "--seed", str(seed)])
                  for seed in (0, 1, 2)]
    sweep.wait(others + later, deadline)
    sweep.finish({teacher: "teacher_best.pt", f"{sweep.runs_dir}/best_s0/best.pt": "resnet_best_s0.pt"})


def teacher_then_students(deadline: float, teacher_deadline: float) -> None:
    """The `teacher` sweep (see the module docstring)."""
    sweep = Sweep("sweep2", deadline)
    for name, args in TEACHERS.items():
        sweep.launch(name, "cnn", args)
    sweep.wait(list(TEACHERS), teacher_deadline)
    done = {run: sweep.results["runs"][run]["summary"]["best_val_acc"] for run in TEACHERS
            if "summary" in sweep.results["runs"][run]}
    teacher = (f"{sweep.runs_dir}/{max(done, key=done.get)}/best.pt" if done
               else os.environ.get("SWEEP_FALLBACK_TEACHER", ""))
    sweep.results["teacher"] = teacher
    for seed in (0, 1, 2):
        sweep.launch(f"student_s{seed}", "cnn", STUDENT + ["--seed", str(seed), "--teacher", teacher])
        sweep.launch(f"plain_s{seed}", "cnn", STUDENT + ["--seed", str(seed)])
    sweep.wait(list(sweep.procs), deadline)
    sweep.finish({teacher: "teacher2.pt"})


def tar_best(sweep: Sweep, runs: list[str], name: str) -> None:
    """$OUT/<name>.tar with each finished run's best.pt as <run>.pt."""
    folder = f"/tmp/{name}"
    os.makedirs(folder, exist_ok=True)
    for run in runs:
        if os.path.exists(f"{sweep.runs_dir}/{run}/best.pt"):
            shutil.copy(f"{sweep.runs_dir}/{run}/best.pt", f"{folder}/{run}.pt")
    subprocess.run(["tar", "cf", os.path.join(OUT, f"{name}.tar"), "-C", folder, "."])


def best_teacher_then_patient_students(deadline: float, teacher_deadline: float) -> None:
    """The `distill` sweep (see the module docstring)."""
    sweep = Sweep("sweep3", deadline)
    teachers = [sweep.launch(f"best_s{seed}", "cnn", ["--preset", "best", "--seed", str(seed)]) for seed in (0, 1, 2)]
    sweep.wait(teachers[:1], teacher_deadline)
    teacher = (f"{sweep.runs_dir}/best_s0/best.pt" if "summary" in sweep.results["runs"]["best_s0"]
               else os.environ.get("SWEEP_FALLBACK_TEACHER", ""))
    sweep.results["teacher"] = teacher
    launch_students(sweep, teacher, ["plain50", "kd50_a09_t4", "kd50_a1_t1"])
    tar_best(sweep, teachers, "teachers")


def launch_students(sweep: Sweep, teacher: str, variants: list[str]) -> None:
    """3 seeds of each of PATIENT_STUDENTS' `variants` (kd ones with `teacher`), until the deadline."""
    students = {variant: [sweep.launch(f"{variant}_s{seed}", "cnn", PATIENT_STUDENTS[variant] + ["--seed", str(seed)]
                                       + (["--teacher", teacher] if "kd" in variant else []))
                          for seed in (0, 1, 2)]
                for variant in variants}
    sweep.wait(list(sweep.procs), sweep.deadline)
    sweep.finish({})
    for variant, runs in students.items():
        tar_best(sweep, runs, f"students-{variant}")


if __name__ == "__main__":
    mode, args = sys.argv[1], sys.argv[2:]
    if mode == "students":
        launch_students(Sweep("sweep4", float(args[0])), args[1], args[2:])
    else:
        limits = [float(value) for value in args]
        if mode == "recipes":
            recipes(*(limits or [560]))
        elif mode == "distill":
            best_teacher_then_patient_students(*(limits or [540, 240]))
        else:
            teacher_then_students(*(limits or [250, 110]))
