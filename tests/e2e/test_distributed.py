"""torchrun data parallelism on the CPU (gloo): two processes train what one does, and a
killed two-process pretraining resumes, in another world size too."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import ROOT

from facessl.config import Preprocessing
from facessl.data.cache import decode_face

pytestmark = pytest.mark.slow

STEP = ROOT / "tests" / "e2e" / "ddp_step.py"


def _torchrun(processes: int, *args: str) -> list[str]:
    return [sys.executable, "-m", "torch.distributed.run", "--standalone",
            f"--nproc_per_node={processes}", *args]


def _kill_tree(pid: int) -> None:
    """SIGKILL a process and every process under it: torchrun starts its workers in
    sessions of their own, so killing its process group would leave them training."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    doomed, stack = [], [pid]
    while stack:
        doomed.append(stack.pop())
        stack += children.get(doomed[-1], [])
    for each in doomed:
        try:
            os.kill(each, signal.SIGKILL)
        except ProcessLookupError:
            pass


@pytest.fixture(scope="module")
def batch(tiny_lfw, tmp_path_factory) -> Path:
    """16 real faces of 3 people at 32 px, and their labels: one global batch."""
    manifest = tiny_lfw["manifest"]
    rows = [(p, label) for label, person in enumerate(sorted(manifest["community"]))
            for p in manifest["community"][person]["train"]][:16]
    prep = Preprocessing(size=32)
    faces = np.stack([decode_face((tiny_lfw["folder"] / p).read_bytes(), prep)[0]
                      for p, _ in rows])
    path = tmp_path_factory.mktemp("ddp") / "batch.pt"
    torch.save({"images": torch.from_numpy(faces).permute(0, 3, 1, 2).contiguous(),
                "labels": torch.tensor([label for _, label in rows])}, path)
    return path


@pytest.mark.parametrize("kind", ["classification", "simclr"])
def test_two_processes_take_the_step_one_process_takes(kind, batch, tmp_path):
    """One step on a fixed global batch of 16: the same loss and the same update of every
    weight (ResNet-18, whose BatchNorm then normalises over the global batch; SimCLR with
    its negatives gathered from both processes). Float rounding alone moves the first
    layers' update by 0.6% (measured: the same batch in another order, one process); with
    each process's BatchNorm on its own half, the update was 70% off."""
    env = dict(os.environ, OMP_NUM_THREADS="1")
    alone, shared = tmp_path / "alone.pt", tmp_path / "shared.pt"
    for command, out in (([sys.executable, str(STEP)], alone), (_torchrun(2, str(STEP)), shared)):
        done = subprocess.run([*command, kind, str(batch), str(out)], env=env,
                              capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr[-3000:]
    one, two = torch.load(alone), torch.load(shared)
    assert (one["world_size"], two["world_size"]) == (1, 2)
    assert two["loss"] == pytest.approx(one["loss"], rel=1e-5)
    moved = 0
    for name, weights in one["state"].items():
        step_one = weights.double() - one["initial"][name].double()
        step_two = two["state"][name].double() - two["initial"][name].double()
        off = (step_two - step_one).norm().item()
        assert off <= 0.03 * step_one.norm().item() + 1e-7, f"{name}: {off:.2e} off"
        moved += bool(step_one.norm() > 0)
    assert moved > 20  # the step moved the weights: the comparison is not of two inits


def test_a_killed_two_process_pretraining_resumes_in_one_process(pool_lfw, tmp_path):
    """torchrun over 2 processes, SIGKILLed after its second epoch: rank 0's resumable state
    says world size 2, and one process (another world size) finishes the run from it, every
    epoch logged once."""
    out = tmp_path / "run"
    args = ["-m", "facessl", "pretrain", "--method", "rotation", "--backbone", "tinyvgg",
            "--epochs", "12", "--split", str(pool_lfw["split"]), "--data",
            str(pool_lfw["folder"]), "--out", str(out), "--quiet"]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    process = subprocess.Popen(_torchrun(2, *args), env=env, start_new_session=True,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    log = out / "log.jsonl"
    deadline = time.monotonic() + 300
    while not (log.is_file() and len(log.read_text().splitlines()) >= 2):
        assert process.poll() is None and time.monotonic() < deadline, "it never trained"
        time.sleep(0.1)
    _kill_tree(process.pid)
    process.wait()
    state = torch.load(out / "resume.pt", weights_only=True)
    assert state["world_size"] == 2 and 2 <= len(state["history"]) < 12
    done = subprocess.run([sys.executable, *args], env=env, capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    meta = json.loads((out / "checkpoint.json").read_text())
    assert [h["epoch"] for h in meta["history"]] == list(range(1, 13))
    assert (meta["world_size"], meta["global_batch"]) == (1, meta["config"]["train"]["batch_size"])
    logged = [json.loads(line)["epoch"] for line in log.read_text().splitlines()]
    assert logged == list(range(1, 13))


def _alone_and_shared(args: list[str], tmp_path: Path) -> dict[str, tuple[Path, str]]:
    """A facessl command run by 1 process ("one") and by torchrun's 2 ("two"), each into its
    own --out: {name: (out, stdout)}, after checking each ended well."""
    env = dict(os.environ, OMP_NUM_THREADS="1")
    runs = {}
    for name, launcher in (("one", [sys.executable]), ("two", _torchrun(2))):
        out = tmp_path / name
        done = subprocess.run([*launcher, *args, "--out", str(out)], env=env,
                              capture_output=True, text=True, timeout=600)
        assert done.returncode == 0 and "Traceback" not in done.stderr, done.stderr[-3000:]
        runs[name] = out, done.stdout
    return runs


def test_an_experiment_under_torchrun_trains_what_one_process_trains(tiny_lfw, tmp_path):
    """The fine-tunes and the pretext of `facessl experiment` shared by 2 processes: the
    same epochs and losses as 1 process (within float noise), one results.json, and the
    summary printed once."""
    args = ["-m", "facessl", "experiment", "--split", str(tiny_lfw["split"]), "--data",
            str(tiny_lfw["folder"]), "--arms", "ssl", "scratch", "--seeds", "0",
            "--epochs", "2", "--pretext-epochs", "1"]
    runs = {}
    for name, (out, stdout) in _alone_and_shared(args, tmp_path).items():
        assert stdout.count("final test accuracy") == 2, stdout
        runs[name] = json.loads((out / "results.json").read_text())["runs"]
        assert (out / "report.md").is_file()
    assert set(runs["one"]) == set(runs["two"]) == {"ssl/0", "scratch/0"}
    for key, run in runs["one"].items():
        alone = [h["train_loss"] for h in run["history"] + run.get("pretext_history", [])]
        shared = [h["train_loss"] for h in runs["two"][key]["history"]
                  + runs["two"][key].get("pretext_history", [])]
        assert shared == pytest.approx(alone, rel=0.02), key


def test_evaluate_under_torchrun_writes_one_result_like_one_process(tiny_lfw, tmp_path):
    """`facessl evaluate`'s fine-tunes shared by 2 processes: one results.json holding the
    same frozen scores as 1 process, a fine-tune score, and one closing line."""
    args = ["-m", "facessl", "evaluate", "random:tinyvgg", "--split", str(tiny_lfw["split"]),
            "--data", str(tiny_lfw["folder"]), "--protocols", "knn", "finetune",
            "--shots", "2", "--seeds", "0", "--finetune-epochs", "2", "--no-verification"]
    scores = {}
    for name, (out, stdout) in _alone_and_shared(args, tmp_path).items():
        assert stdout.count("wrote ") == 1, stdout
        scores[name] = json.loads((out / "results.json").read_text())["accuracy"]["2"]
    assert scores["two"]["knn"] == scores["one"]["knn"]
    assert 0 <= scores["two"]["finetune"]["mean"] <= 1
