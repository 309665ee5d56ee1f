"""Many training processes launched at once, deadline-guarded, their results kept in one JSON file
that is rewritten after every event (for bench/gpu_sweep.py)."""
import json
import os
import shutil
import subprocess
import sys
import time

OUT = os.environ.get("OUT", "/tmp/out")
DATA = os.environ.get("SWEEP_DATA", "../shared/data")
EXTRA = os.environ.get("SWEEP_EXTRA", "").split()


class Sweep:
    """Training processes launched at once, their results, and a JSON file that always holds them."""

    def __init__(self, name: str, deadline: float) -> None:
        self.name, self.deadline, self.start = name, deadline, time.time()
        self.runs_dir, self.logs_dir = f"/tmp/{name}-runs", f"/tmp/{name}-logs"
        for folder in (self.runs_dir, self.logs_dir, OUT):
            os.makedirs(folder, exist_ok=True)
        self.procs: dict[str, subprocess.Popen] = {}
        self.results: dict = {"events": []}

    def elapsed(self) -> float:
        return time.time() - self.start

    def save(self) -> None:
        self.results["elapsed"] = self.elapsed()
        path = os.path.join(OUT, f"{self.name}.json")
        with open(f"{path}.tmp", "w") as f:  # then moved into place: a kill never leaves half a file
            json.dump(self.results, f, indent=1)
        os.replace(f"{path}.tmp", path)

    def launch(self, run: str, script: str, args: list[str]) -> str:
        """Start `train_<script>.py ARGS` into its own run folder (fp32, one CPU thread)."""
        cmd = [sys.executable, f"train_{script}.py", "--data-dir", DATA, "--out-dir", f"{self.runs_dir}/{run}",
               "--no-progress", "--no-tensorboard", "--precision", "fp32", *args, *EXTRA]
        self.procs[run] = subprocess.Popen(cmd, stdout=open(f"{self.logs_dir}/{run}.log", "w"),
                                           stderr=subprocess.STDOUT, env={**os.environ, "OMP_NUM_THREADS": "1"})
        self.results["events"].append([round(self.elapsed()), "launch", run, " ".join(args)])
        self.save()
        return run

    def collect(self, run: str) -> dict:
        """A run's summary (if finished), its validation curve and, for a failure, its log's end."""
        folder, entry = f"{self.runs_dir}/{run}", {"rc": self.procs[run].poll()}
        if os.path.exists(f"{folder}/summary.json"):
            entry["summary"] = json.load(open(f"{folder}/summary.json"))
        if os.path.exists(f"{folder}/metrics.jsonl"):
            rows = [json.loads(line) for line in open(f"{folder}/metrics.jsonl")]
            entry["val_acc"] = [round(r["val_acc"], 4) for r in rows]
            entry["epoch_s"] = round(sum(r["seconds"] for r in rows) / max(len(rows), 1), 2)
        if entry["rc"] not in (0, None):
            entry["log_tail"] = open(f"{self.logs_dir}/{run}.log").read()[-300:]
        return entry

    def wait(self, runs: list[str], until: float) -> None:
        """Wait until `runs` have ended or `until` seconds have passed; record what they reached."""
        while any(self.procs[r].poll() is None for r in runs) and self.elapsed() < until:
            time.sleep(1)
        for run in runs:
            self.results.setdefault("runs", {})[run] = self.collect(run)
        self.save()

    def finish(self, keep: dict[str, str]) -> None:
        """Kill what still runs, record everything, copy `keep` {source: name} and the logs to $OUT."""
        for run, proc in self.procs.items():
            if proc.poll() is None:
                proc.kill()
                self.results["events"].append([round(self.elapsed()), "killed", run])
        self.wait(list(self.procs), self.deadline + 5)
        for source, name in keep.items():
            if source and os.path.exists(source):
                shutil.copy(source, os.path.join(OUT, name))
        subprocess.run(["tar", "czf", os.path.join(OUT, f"{self.name}.tgz"), "--exclude=*.pt", "--exclude=*.png",
                        "-C", "/tmp", os.path.basename(self.runs_dir), os.path.basename(self.logs_dir)])
        self.save()
