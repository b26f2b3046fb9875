"""`benchmarks/speed.py --quick` runs end to end and prints well-formed Markdown tables.

No timing is asserted (the cores are shared); only that the tables exist, their numbers
parse as positive values and --out holds exactly what was printed. The run uses one torch
thread: on shared cores a 2-thread torch waits on a descheduled thread and runs many times
slower, which would only make this test slow.
"""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "benchmarks" / "speed.py"


def _table(text: str, first_header: str) -> tuple[list[str], list[list[str]]]:
    """(headers, rows) of the Markdown table whose header row starts with `first_header`."""
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(f"| {first_header} |"))
    cells = lambda line: [c.strip() for c in line.strip().strip("|").split("|")]  # noqa: E731
    headers = cells(lines[start])
    assert set(lines[start + 1].replace("|", "").replace(":", "")) == {"-"}, lines[start + 1]
    rows = []
    for line in lines[start + 2 :]:
        if not line.startswith("|"):
            break
        rows.append(cells(line))
    assert rows, f"table {first_header!r} has no rows"
    return headers, rows


def _column(text: str, first_header: str, column: str) -> list[str]:
    headers, rows = _table(text, first_header)
    assert column in headers, f"{column!r} not in {headers}"
    return [r[headers.index(column)] for r in rows]


def _positive(values: list[str]) -> list[float]:
    out = [float(v.replace(",", "")) for v in values]
    assert all(v > 0 for v in out), values
    return out


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("bench") / "speed.md"
    proc = subprocess.run(
        [sys.executable, str(SCRIPT), "--quick", "--threads", "1", "--out", str(out)],
        cwd=ROOT, capture_output=True, text=True, timeout=900,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout, out


@pytest.mark.slow
def test_quick_benchmark_prints_every_table(quick_run):
    text, out = quick_run
    header = next(line for line in text.splitlines() if line.startswith("Machine:"))
    for part in ("torch threads 1", "load average", "torch 2", "date "):
        assert part in header, header

    headers, rows = _table(text, "bundle | network | params (M)")
    for col in ("input (B x C x H x W)", "tile batch", "ms / NFE (median)", "ms / NFE (best)",
                "ms / tile / NFE", "tiles / s per NFE"):
        assert col in headers
    # --quick: shipped bundle only, LDM-P and LDM-S at tile batch 1 and 4.
    assert {(r[1], r[headers.index("tile batch")]) for r in rows} == {
        ("LDM-P", "1"), ("LDM-P", "4"), ("LDM-S", "1"), ("LDM-S", "4")}
    assert all(r[0].startswith("shipped") for r in rows)
    assert "1 x 6 x 64 x 64" in [r[headers.index("input (B x C x H x W)")] for r in rows]
    for col in ("ms / NFE (median)", "ms / NFE (best)", "ms / tile / NFE", "tiles / s per NFE"):
        _positive(_column(text, "bundle | network | params (M)", col))

    _positive(_column(text, "when", "GFLOP/s"))
    assert any(op.startswith("torch.matmul 2048") for op in _column(text, "when", "op"))
    for col in ("GFLOP / NFE", "achieved GFLOP/s", "matmul GFLOP/s", "ratio to matmul", "ratio to conv yardstick"):
        _positive(_column(text, "bundle | network | tile batch", col))

    headers, rows = _table(text, "variant (shipped LDM-S)")
    for col in ("compile s", "ms / NFE (median)", "speed-up vs eager", "keep?"):
        assert col in headers
    names = [r[0] for r in rows]
    assert any(n.startswith("eager") for n in names) and any(n.startswith("channels-last") for n in names)
    compile_row = next(r for r in rows if r[0].startswith("torch.compile"))
    assert "not run" in compile_row[headers.index("ms / NFE (median)")]
    measured = [r for r in rows if not r[0].startswith("torch.compile")]
    _positive([r[headers.index("ms / NFE (median)")] for r in measured])
    assert all(r[headers.index("keep?")].split()[0] in ("baseline", "keep", "no") for r in measured)

    headers, rows = _table(text, "frame | batch invariant | strategy")
    assert [r[0] for r in rows] == ["256 x 256 synthetic"] * 2
    assert [r[headers.index("batch invariant")] for r in rows] == ["auto", "off"]  # side by side
    for row in rows:
        for col in ("NFE / tile", "s / frame", "s / tile", "ms / tile / NFE", "peak RSS (MiB)", "VmHWM (MiB)"):
            _positive([row[headers.index(col)]])
    assert "x the time of batched tiles, measured side by side above" in text

    assert "Not run (pass --huge)." in text
    assert out.read_text(encoding="utf-8") == text


@pytest.mark.slow
def test_batch_scaling_and_malloc_trim_scripts_print_their_tables(tmp_path):
    root = Path(__file__).resolve().parents[1]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    out = tmp_path / "scaling.md"
    done = subprocess.run([sys.executable, str(root / "benchmarks" / "batch_scaling.py"), "--data", str(tmp_path / "none"),
                           "--size", "200", "--frames", "2", "--workers", "2", "--out", str(out)],
                          capture_output=True, text=True, timeout=600, env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    rows = [ln for ln in out.read_text().splitlines() if ln.startswith("| this process") or ln.startswith("| Dask")]
    assert len(rows) == 2 and all(re.search(r"\| [0-2]/2 \|$", r.rstrip()) for r in rows)
    done = subprocess.run([sys.executable, str(root / "benchmarks" / "malloc_trim.py"), "--image", "none",
                           "--size", "128", "--repeats", "1"], capture_output=True, text=True, timeout=600, env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "| unset (glibc default) | 1 |" in done.stdout and "MALLOC_TRIM_THRESHOLD_=65536" in done.stdout


def test_input_scale_benchmark_prints_both_scales(tmp_path):
    import numpy as np
    from PIL import Image

    root = Path(__file__).resolve().parents[1]
    frames = tmp_path / "frames"
    frames.mkdir()
    rng = np.random.default_rng(0)
    Image.fromarray((120 + 20 * rng.normal(size=(300, 300))).clip(0, 255).astype(np.uint8)).save(frames / "a.png")
    done = subprocess.run([sys.executable, str(root / "benchmarks" / "input_scale.py"), "--data", str(frames),
                           "--frames", "1"], capture_output=True, text=True, timeout=600,
                          env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert done.returncode == 0, done.stderr[-3000:]
    rows = [ln for ln in done.stdout.splitlines() if re.match(r"\| (0\.5|1) \|", ln)]
    assert len(rows) == 2 and rows[1].endswith("| 1.00x |") and "x faster |" in rows[0]
    assert "300x300" in done.stdout
