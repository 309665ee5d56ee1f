"""A longer-trained ResNet-20 (60 epochs at batch 512, with and without random erasing), then seed-CNN
students with and without the better one as teacher (budget recipe at batch 256), 3 seeds each.

    OUT=folder python bench/gpu_sweep_teacher.py [DEADLINE_S] [TEACHER_DEADLINE_S]

Students start at TEACHER_DEADLINE_S with the best finished teacher, else $SWEEP_FALLBACK_TEACHER.
Results: $OUT/sweep2.json (bench/results/gpu-sweep-teacher.json holds the H200 run of the README)."""
import json
import os
import shutil
import subprocess
import sys
import time

sys.path.insert(0, os.getcwd())
OUT = os.environ.get("OUT", "/tmp/out")
DATA = os.environ.get("SWEEP_DATA", "../shared/data")
EXTRA = os.environ.get("SWEEP_EXTRA", "").split()
DEADLINE = float(sys.argv[1]) if len(sys.argv) > 1 else 250
T_TEACHER = float(sys.argv[2]) if len(sys.argv) > 2 else 110
T0 = time.time()
for folder in ("/tmp/runs2", "/tmp/logs2"):
    os.makedirs(folder, exist_ok=True)
procs, results = {}, {"events": []}

TEACHER = ["--model", "resnet", "--tta", "--channels-last", "--optimizer", "sgd", "--nesterov", "--lr", "0.2",
           "--weight-decay", "5e-4", "--scheduler", "cosine", "--warmup-epochs", "2", "--batch-size", "512",
           "--epochs", "60", "--depth", "20"]
TEACHERS = {"t_re5": TEACHER + ["--random-erasing", "0.5"], "t_re0": TEACHER}
STUDENT = ["--preset", "budget", "--batch-size", "256"]


def save():
    results["elapsed"] = time.time() - T0
    json.dump(results, open(os.path.join(OUT, "sweep2.json"), "w"), indent=1)


def launch(run, args):
    cmd = [sys.executable, "train_cnn.py", "--data-dir", DATA, "--out-dir", f"/tmp/runs2/{run}", "--no-progress",
           "--no-tensorboard", "--precision", "fp32", *args, *EXTRA]
    procs[run] = subprocess.Popen(cmd, stdout=open(f"/tmp/logs2/{run}.log", "w"), stderr=subprocess.STDOUT,
                                  env={**os.environ, "OMP_NUM_THREADS": "1"})
    results["events"].append([round(time.time() - T0), "launch", run])
    save()


def collect(run):
    folder, entry = f"/tmp/runs2/{run}", {"rc": procs[run].poll()}
    if os.path.exists(f"{folder}/summary.json"):
        entry["summary"] = json.load(open(f"{folder}/summary.json"))
    if os.path.exists(f"{folder}/metrics.jsonl"):
        rows = [json.loads(line) for line in open(f"{folder}/metrics.jsonl")]
        entry["val_acc"] = [round(r["val_acc"], 4) for r in rows]
        entry["epoch_s"] = round(sum(r["seconds"] for r in rows) / max(len(rows), 1), 2)
    if entry["rc"] not in (0, None):
        entry["log_tail"] = open(f"/tmp/logs2/{run}.log").read()[-300:]
    return entry


def wait(runs, until):
    while any(procs[r].poll() is None for r in runs) and time.time() - T0 < until:
        time.sleep(1)
    for r in runs:
        results.setdefault("runs", {})[r] = collect(r)
    save()


def main():
    for name, args in TEACHERS.items():
        launch(name, args)
    wait(list(TEACHERS), T_TEACHER)
    done = {r: results["runs"][r]["summary"]["best_val_acc"] for r in TEACHERS if "summary" in results["runs"][r]}
    teacher = f"/tmp/runs2/{max(done, key=done.get)}/best.pt" if done else os.environ.get("SWEEP_FALLBACK_TEACHER", "")
    results["teacher"] = teacher
    for seed in (0, 1, 2):
        launch(f"student_s{seed}", STUDENT + ["--seed", str(seed), "--teacher", teacher])
        launch(f"plain_s{seed}", STUDENT + ["--seed", str(seed)])
    wait(list(procs), DEADLINE)
    for run, p in procs.items():
        if p.poll() is None:
            p.kill()
            results["events"].append([round(time.time() - T0), "killed", run])
    wait(list(procs), DEADLINE + 3)
    if os.path.exists(teacher):
        shutil.copy(teacher, os.path.join(OUT, "teacher2.pt"))
    subprocess.run(["tar", "czf", os.path.join(OUT, "runs2.tgz"), "--exclude=*.pt", "--exclude=*.png", "-C", "/tmp",
                    "runs2", "logs2"])
    save()


if __name__ == "__main__":
    main()
