"""Long runs survive kills and blow-ups: SIGKILL + resume, injected non-finite energies."""

import json
import math
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pyvista as pv

import vefrac.solve as solve
from vefrac.cli import main

ROOT = Path(__file__).resolve().parents[1]
SQUARE = str(ROOT / "scenarios" / "square-mud.yaml")

TINY = ["solver.load_steps=3", "solver.iterations=60", "solver.first_step_iterations=60", "solver.points=512",
        "output.resolution=40", "output.snapshots=4", "solver.checkpoint_every=20",
        "solver.cache_points_per_length=0.25", "network.fourier_features=16", "network.width=16"]
SETS = [a for kv in TINY for a in ("--set", kv)]


def _default_sigint():
    # a shell without job control starts background jobs with SIGINT ignored, and Python keeps an
    # ignored SIGINT ignored: give the child the default, so Ctrl-C reaches it as it would a user's run
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def vefrac(*args):
    return subprocess.Popen([sys.executable, "-m", "vefrac", *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, preexec_fn=_default_sigint)


def _read(path):
    try:
        return path.read_text()
    except FileNotFoundError:
        return ""


def test_sigkill_then_resume_gives_the_uninterrupted_result(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    whole = vefrac("run", SQUARE, "--out", str(a), "--quiet", *SETS)
    victim = vefrac("run", SQUARE, "--out", str(b), "--quiet", *SETS)
    deadline = time.time() + 120
    # wait for the second snapshot to be listed (the .vti is written before the collection names it)
    while not ((b / "checkpoint.pt").exists() and "fields_0001.vti" in _read(b / "fields.pvd")):
        assert victim.poll() is None, victim.communicate()
        assert time.time() < deadline
        time.sleep(0.05)
    victim.send_signal(signal.SIGKILL)
    victim.wait()
    assert not (b / "summary.json").exists()  # it really died mid-run
    # what it wrote so far still opens: the collection lists only finished snapshots
    reader = pv.PVDReader(str(b / "fields.pvd"))
    assert len(reader.time_values) >= 2
    assert all((b / ds.path).exists() for ds in reader.datasets)
    (b / ".checkpoint.pt.abc123.tmp").write_bytes(b"half")  # as if killed inside a write
    resumed = vefrac("run", SQUARE, "--out", str(b), "--resume", "--quiet", *SETS)
    assert resumed.wait(timeout=300) == 0, resumed.communicate()
    assert whole.wait(timeout=300) == 0, whole.communicate()
    for i in range(4):
        pa = pv.read(a / f"fields_{i:04d}.vti").point_data
        pb = pv.read(b / f"fields_{i:04d}.vti").point_data
        for name in ("phi", "u"):
            assert np.array_equal(pa[name], pb[name]), (i, name)
    sa, sb = (json.loads((d / "summary.json").read_text()) for d in (a, b))
    assert sa["final"] == sb["final"]
    assert not list(b.glob(".*.tmp"))  # the resumed run removed what the killed one half-wrote


def inject_nan(monkeypatch, *, calls):
    """Make energy_terms return a NaN elastic density on the given call numbers."""
    real = solve.energy_terms
    count = [0]

    def faulty(*args, **kwargs):
        out = real(*args, **kwargs)
        count[0] += 1
        if count[0] in calls:
            out["elastic"] = out["elastic"] * math.nan
        return out

    monkeypatch.setattr(solve, "energy_terms", faulty)


def test_a_transient_blowup_is_rolled_back_and_reported(tmp_path, monkeypatch, capsys):
    inject_nan(monkeypatch, calls={75})
    out = tmp_path / "run"
    assert main(["run", SQUARE, "--out", str(out), *SETS]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert len(summary["blowups"]) == 1 and summary["blowups"][0]["lr_scale"] == 0.5
    assert summary["iterations"] == 60 * 3
    assert "rolled back" in capsys.readouterr().err


def test_a_persistent_blowup_gives_up_with_exit_code_1_and_no_nan_in_outputs(tmp_path, monkeypatch, capsys):
    inject_nan(monkeypatch, calls=set(range(75, 10_000)))
    out = tmp_path / "run"
    assert main(["run", SQUARE, "--out", str(out), "--quiet", *SETS]) == 1
    err = capsys.readouterr().err
    assert "non-finite" in err and "Traceback" not in err
    for vti in out.glob("*.vti"):
        for name, values in pv.read(vti).point_data.items():
            assert np.isfinite(values).all(), (vti, name)
    assert not (out / "summary.json").exists()


def test_a_second_run_into_a_busy_folder_is_refused(tmp_path, capsys):
    from vefrac.runner import output_lock

    out = tmp_path / "run"
    with output_lock(out):  # as if another run were writing there
        assert main(["run", SQUARE, "--out", str(out), "--quiet", *SETS]) == 2
    assert "in use by another vefrac run" in capsys.readouterr().err
    assert not (out / "fields.pvd").exists()


def test_an_unwritable_output_location_fails_before_training(tmp_path, capsys):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    assert main(["run", SQUARE, "--out", str(blocker / "run"), "--quiet", *SETS]) == 2
    err = capsys.readouterr().err
    assert "cannot be written" in err and "Traceback" not in err


def test_ctrl_c_stops_cleanly_with_a_checkpoint_to_resume_from(tmp_path):
    out = tmp_path / "run"
    proc = vefrac("run", SQUARE, "--out", str(out), *SETS)
    deadline = time.time() + 120
    while not (out / "fields_0001.vti").exists():
        assert proc.poll() is None and time.time() < deadline
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130 and "--resume" in err and "Traceback" not in err
    resumed = vefrac("run", SQUARE, "--out", str(out), "--resume", "--quiet", *SETS)
    assert resumed.wait(timeout=300) == 0
    assert json.loads((out / "summary.json").read_text())["iterations"] == 60 * 3  # every step finished
