"""FashionMNIST recipe sweep on one GPU: many single-GPU training processes at once.

    OUT=folder python bench/gpu_sweep_fashion_mnist.py [DEADLINE_S]   # SWEEP_DATA=../shared/data

ResNet variants sized to train in under 30 minutes on 2 CPU cores (seed 0, validation with and
without flip averaging), the seed CNN's default recipe with random erasing and/or a weight average,
the MLP with and without a weight average; then 3 seeds of the ResNet chosen on validation and
seed-CNN students of its best.pt. Everything is killed at DEADLINE_S; $OUT/sweep.json is rewritten
after every event (bench/results/gpu-sweep-fashion-mnist.json holds the H200 run of the README)."""
import json
import os
import subprocess
import sys
import time

import torch

sys.path.insert(0, os.getcwd())

OUT = os.environ.get("OUT", "/tmp/out")
DATA = os.environ.get("SWEEP_DATA", "../shared/data")
EXTRA = os.environ.get("SWEEP_EXTRA", "").split()
VAL = int(os.environ.get("SWEEP_VAL", "5000"))
DEVICE = "cuda" if torch.cuda.is_available() else "cpu"
DEADLINE = float(sys.argv[1]) if len(sys.argv) > 1 else 560
T0 = time.time()
os.makedirs("/tmp/runs", exist_ok=True)
os.makedirs("/tmp/logs", exist_ok=True)
procs = {}  # name -> (Popen, args)
results = {"events": []}

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


def save():
    results["elapsed"] = time.time() - T0
    with open(os.path.join(OUT, "sweep.json"), "w") as f:
        json.dump(results, f, indent=1)


def launch(name, script, args, seed=0):
    run = f"{name}_s{seed}"
    cmd = [sys.executable, f"train_{script}.py", "--data-dir", DATA, "--out-dir", f"/tmp/runs/{run}", "--no-progress",
           "--no-tensorboard", "--precision", "fp32", "--seed", str(seed), *args, *EXTRA]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    procs[run] = subprocess.Popen(cmd, stdout=open(f"/tmp/logs/{run}.log", "w"), stderr=subprocess.STDOUT, env=env)
    results["events"].append([round(time.time() - T0), "launch", run, " ".join(args)])
    save()
    return run


def collect(run):
    folder = f"/tmp/runs/{run}"
    entry = {}
    if os.path.exists(f"{folder}/summary.json"):
        entry["summary"] = json.load(open(f"{folder}/summary.json"))
    if os.path.exists(f"{folder}/metrics.jsonl"):
        rows = [json.loads(line) for line in open(f"{folder}/metrics.jsonl")]
        entry["val_acc"] = [round(r["val_acc"], 4) for r in rows]
        entry["epoch_s"] = round(sum(r["seconds"] for r in rows) / max(len(rows), 1), 2)
    entry["rc"] = procs[run].poll()
    tail = open(f"/tmp/logs/{run}.log").read()[-300:]
    if entry["rc"] not in (0, None):
        entry["log_tail"] = tail
    return entry


def tta_check(run):
    """Validation accuracy of best.pt with and without flip averaging."""
    from data.tasks import fashion_mnist_bundle
    from utils.checkpoint import load_checkpoint, model_from_checkpoint
    from utils.engine import evaluate
    from utils.runtime import Runtime
    ckpt = load_checkpoint(f"/tmp/runs/{run}/best.pt")
    model = model_from_checkpoint(ckpt, DEVICE)
    bundle = fashion_mnist_bundle(DATA, batch_size=128, eval_batch_size=1000, val_size=VAL, seed=0, augment=False,
                                  channels_last=True, device=torch.device(DEVICE))
    runtime = Runtime(torch.device(DEVICE), "fp32")
    accs = {}
    for flag in (False, True):
        model.flip_average = flag
        accs["tta" if flag else "plain"] = evaluate(model, bundle.val, runtime)["acc"]
    return accs


def wait(runs, until):
    while any(procs[r].poll() is None for r in runs) and time.time() - T0 < until:
        time.sleep(2)
    for r in runs:
        results.setdefault("runs", {})[r] = collect(r)
    save()


def kill_all():
    for run, p in procs.items():
        if p.poll() is None:
            p.kill()
            results["events"].append([round(time.time() - T0), "killed", run])


def main():
    res_runs = [launch(n, "cnn", a) for n, a in RESNET.items()]
    others = [launch(n, "cnn", a) for n, a in CNN.items()]
    others += [launch(n, "cnn", CNN[n], seed) for n in ("cnn_default", "cnn_re25_ema") for seed in (1, 2)]
    others += [launch(n, "dnn", a, seed) for n, a in DNN.items() for seed in (0, 1, 2)]
    wait(res_runs, DEADLINE * 0.45)
    tta = {}
    for r in res_runs:
        try:
            tta[r] = tta_check(r)
        except Exception as error:  # unfinished run
            tta[r] = {"error": repr(error)[:200]}
    results["tta"] = tta
    save()
    scored = {r: max(v.values()) for r, v in tta.items() if "error" not in v}
    later = []
    teacher = None
    if scored:
        best = max(scored, key=scored.get)
        use_tta = tta[best]["tta"] > tta[best]["plain"]
        name = best[:-3]
        args = [a for a in RESNET[name] if a != "--tta"] + (["--tta"] if use_tta else [])
        results["chosen_resnet"] = {"run": best, "tta": use_tta, "args": args}
        teacher = f"/tmp/runs/{best}/best.pt"
        later = [launch("best", "cnn", args, seed) for seed in (0, 1, 2)]
        later += [launch("student", "cnn", ["--teacher", teacher], seed) for seed in (0, 1, 2)]
    save()
    wait(others + later, DEADLINE)
    kill_all()
    wait(list(procs), DEADLINE + 5)
    import shutil
    if teacher:
        shutil.copy(teacher, os.path.join(OUT, "teacher_best.pt"))
    if os.path.exists("/tmp/runs/best_s0/best.pt"):
        shutil.copy("/tmp/runs/best_s0/best.pt", os.path.join(OUT, "resnet_best_s0.pt"))
    subprocess.run(["tar", "czf", os.path.join(OUT, "runs.tgz"), "--exclude=*.pt", "--exclude=*.png", "-C", "/tmp",
                    "runs", "logs"])
    save()


if __name__ == "__main__":
    main()
