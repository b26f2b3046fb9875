"""Training under `accelerate launch` (CPU, one process) and torchrun (CPU, two data-parallel processes)."""

import json
import os
import subprocess
import sys

import pytest
import torch
from safetensors.torch import load_file

from napari_pgdiffseg.cli import main

pytestmark = pytest.mark.slow

TRAIN = ["train", "--synthetic", "4", "--preset", "tiny", "--steps-autoencoder", "4", "--steps-ldm-p", "3",
         "--steps-ldm-s", "3", "--crop-ldm", "64", "--batch-ldm", "2", "--device", "cpu", "--seed", "3"]
WEIGHTS = "ldm_s/diffusion_pytorch_model.safetensors"


def _env():
    # One torch thread per process: two processes on two cores, and the same kernels as the
    # in-process run that they are compared with.
    return {**os.environ, "OMP_NUM_THREADS": "1"}


def _run(cmd, cwd):
    done = subprocess.run(cmd, cwd=cwd, env=_env(), capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-4000:]
    return done


def _card(bundle):
    return json.loads((bundle / "pgdiffseg.json").read_text())["provenance"]["training_runs"][-1]


@pytest.fixture(scope="module")
def plain(tmp_path_factory):
    """The same training without accelerate, in a fresh process with one torch thread.

    A fresh process, not this one: after the napari tests have made OpenGL contexts here,
    this process's float results can differ in the last bit (a GL driver may switch the
    CPU's denormal handling), and the comparison must not depend on which tests ran first.
    """
    out = tmp_path_factory.mktemp("plain") / "bundle"
    done = _run([sys.executable, "-m", "napari_pgdiffseg.cli", *TRAIN, "--out", str(out)], out.parent)
    assert "bundle written to" in done.stdout
    return out


def test_train_accelerate_cpu_single_process_reproduces_the_plain_run(plain, tmp_path):
    out = tmp_path / "bundle"
    done = _run([sys.executable, "-m", "napari_pgdiffseg.cli", *TRAIN, "--out", str(out),
                 "--accelerate=--cpu --num_processes 1 --num_machines 1 --mixed_precision no --dynamo_backend no"],
                tmp_path)
    assert "accelerate.commands.launch --cpu --num_processes 1" in done.stderr  # it went through accelerate
    assert "bundle written to" in done.stdout
    run = _card(out)
    assert run["processes"] == 1 and "--accelerate" not in run["command"]
    a, b = load_file(out / WEIGHTS), load_file(plain / WEIGHTS)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_two_data_parallel_processes_write_one_bundle(plain, tmp_path):
    out = tmp_path / "bundle"
    done = _run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "-m", "napari_pgdiffseg.cli",
                 *TRAIN, "--out", str(out)], tmp_path)
    assert done.stdout.count("bundle written to") == 1  # only process 0 reports and writes
    run = _card(out)
    assert run["processes"] == 2
    assert main(["info", "--bundle", str(out)]) == 0
    # Process 1's batches reached the averaged gradients: the weights differ from one process's.
    a, b = load_file(out / WEIGHTS), load_file(plain / WEIGHTS)
    assert any(not torch.equal(a[k], b[k]) for k in a)
    assert not [p for p in out.parent.rglob("*.tmp")]  # no half-written checkpoint left


def test_bf16_mixed_precision_on_cpu_trains_float32_weights_that_differ_from_fp32(plain, tmp_path):
    out = tmp_path / "bundle"
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        assert main([*TRAIN, "--out", str(out), "--mixed-precision", "bf16"]) == 0
    finally:
        torch.set_num_threads(threads)
    assert _card(out)["config"]["mixed_precision"] == "bf16"
    a, b = load_file(out / WEIGHTS), load_file(plain / WEIGHTS)
    assert {v.dtype for v in a.values()} == {torch.float32}  # fp32 master weights, bf16 autocast
    assert any(not torch.equal(a[k], b[k]) for k in a)  # autocast changed the arithmetic
    assert main(["info", "--bundle", str(out)]) == 0
