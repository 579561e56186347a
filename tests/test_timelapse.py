"""Time-lapse inversion: `vefrac invert` from a sequence of crack pictures, each at its own time.

A 2-frame sequence at tiny budgets end to end, and every bad sequence refused with exit 2, a
message naming the option or file and no output folder.
"""

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from vefrac import cli
from vefrac.timelapse import Frame, check_frames, fitting_load_steps, read_times_file

ROOT = Path(__file__).resolve().parents[1]
SQUARE = str(ROOT / "scenarios" / "square-mud.yaml")  # t_end 0.1

TINY = ["solver.points=128", "solver.load_steps=2", "solver.iterations=3", "solver.first_step_iterations=4",
        "output.resolution=32", "output.snapshots=3", "invert.outer_iterations=1",
        "invert.assimilation_iterations=4", "network.fourier_features=8", "network.width=8",
        "network.hidden_layers=1"]


def _sets(items):
    return [a for item in items for a in ("--set", item)]


def _frame(path, *, arm: bool, size=(96, 96)):
    """A vertical crack through the middle; with arm, a T-junction on its left as well."""
    h, w = size
    grey = np.full((h, w), 215, np.uint8)
    grey[:, w // 2 - 2:w // 2 + 2] = 25
    if arm:
        grey[h // 3:h // 3 + 3, : w // 2] = 25
    Image.fromarray(grey).save(path)
    return path


def test_a_two_frame_sequence_inverts_and_reports_every_frame(tmp_path):
    a, b = _frame(tmp_path / "a.png", arm=False), _frame(tmp_path / "b.png", arm=True)
    out = tmp_path / "inv"
    code = cli.main(["invert", SQUARE, "--image", str(a), "--image", str(b), "--times", "0.05", "0.1",
                     "--out", str(out), "--quiet", *_sets(TINY)])
    assert code == 0
    inv = json.loads((out / "summary.json").read_text())["inversion"]
    assert inv["times"] == [0.05, 0.1]
    assert [f["time"] for f in inv["frames"]] == [0.05, 0.1]
    assert [Path(f["image"]).name for f in inv["frames"]] == ["a.png", "b.png"]
    lengths = [f["observed_crack_length"] for f in inv["frames"]]
    assert lengths[1] > lengths[0] + 0.3  # the arm (half the width) appears in the second frame only
    assert len(inv["overlap_per_frame"]) == 2 and inv["overlap_per_frame"][1] == pytest.approx(inv["overlap"])
    assert inv["first_crack_time"]["observed_by"] == 0.05
    from vefrac import posterior

    # a time-lapse pins G down better than one picture: the uncertainty map takes its own τ
    assert inv["uncertainty"]["crack_noise"] == posterior.CRACK_NOISE_TIME_LAPSE < posterior.CRACK_NOISE
    for name in ("crack_lengths.png", "frames_observed_vs_model.png", "observation.png", "observation_0.png",
                 "observation_1.png", "inferred.vti"):
        assert (out / name).is_file(), name
    header = (out / "inversion.csv").read_text().splitlines()[0].split(",")
    assert header[-2:] == ["overlap_0", "overlap_1"]
    # the final forward run has a snapshot at every frame's time
    times = [float(line.split(",")[0]) for line in (out / "history.csv").read_text().splitlines()[1:]]
    assert all(any(abs(t - f) < 1e-12 for t in times) for f in (0.05, 0.1))


def test_a_folder_of_frames_with_a_times_file(tmp_path):
    folder = tmp_path / "frames"
    folder.mkdir()
    _frame(folder / "f1.png", arm=False)
    _frame(folder / "f2.png", arm=True)
    (folder / "times.csv").write_text("file,time\n# taken every 5 minutes\nf1.png, 0.05\nf2.png,0.1\n")
    frames = read_times_file(folder)
    assert frames == [Frame(folder / "f1.png", 0.05), Frame(folder / "f2.png", 0.1)]
    assert check_frames(frames, t_end=0.1, load_steps=2, single_time=None).tolist() == [0.05, 0.1]


def test_the_proposed_load_steps_put_every_time_on_a_step():
    assert fitting_load_steps(np.array([0.03, 0.07, 0.1]), 12) == "20"  # tenths, 12 or more
    assert fitting_load_steps(np.array([0.05, 0.1]), 12) == "12"
    assert fitting_load_steps(np.array([0.025, 0.1]), 10) == "12"


def _bad(tmp_path, case):
    a, b = _frame(tmp_path / "a.png", arm=False), _frame(tmp_path / "b.png", arm=True)
    seq = ["--image", str(a), "--image", str(b)]
    if case == "count":
        return seq + ["--times", "0.05"], "--times"
    if case == "order":
        return seq + ["--times", "0.1", "0.05"], "--times"
    if case == "late":
        return seq + ["--times", "0.05", "0.2"], "shrinkage.t_end"
    if case == "off-step":
        return seq + ["--times", "0.03", "0.1", "--set", "solver.load_steps=2"], "solver.load_steps"
    if case == "no-times":
        return seq, "--times"
    if case == "framing":
        c = _frame(tmp_path / "c.png", arm=True, size=(96, 120))
        return ["--image", str(a), "--image", str(c), "--times", "0.05", "0.1"], "c.png"
    if case == "missing-frame":
        return ["--image", str(a), "--image", str(tmp_path / "gone.png"), "--times", "0.05", "0.1"], "gone.png"
    if case == "single-time":
        return seq + ["--times", "0.05", "0.1", "--set", "invert.observation.time=0.1"], "invert.observation.time"
    if case == "no-times-file":
        return ["--images", str(tmp_path)], "times.txt"
    if case == "bad-times-file":
        (tmp_path / "times.txt").write_text("a.png 0.05\nb.png soon\n")
        return ["--images", str(tmp_path)], "times.txt"
    if case == "both":
        (tmp_path / "times.txt").write_text("a.png 0.05\nb.png 0.1\n")
        return ["--images", str(tmp_path), "--image", str(a)], "--images"
    if case == "nothing":
        return [], "--image"
    raise AssertionError(case)


@pytest.mark.parametrize("case", ["count", "order", "late", "off-step", "no-times", "framing", "missing-frame",
                                  "single-time", "no-times-file", "bad-times-file", "both", "nothing"])
def test_bad_sequences_exit_2_naming_the_option_or_file(tmp_path, capsys, case):
    args, named = _bad(tmp_path, case)
    out = tmp_path / "inv"
    code = cli.main(["invert", SQUARE, *args, "--out", str(out), "--quiet"])
    err = capsys.readouterr().err
    assert code == 2, err
    assert named in err and "Traceback" not in err and err.count("\n") == 1, err
    assert not out.exists()


def test_one_picture_keeps_the_single_picture_path():
    """One picture without --times is the single-picture inversion: its time is
    invert.observation.time or t_end, and the sums over frames have one term."""
    assert check_frames([Frame(Path("x.png"))], t_end=0.1, load_steps=12, single_time=None).tolist() == [0.1]
    assert check_frames([Frame(Path("x.png"))], t_end=0.1, load_steps=12, single_time=0.07).tolist() == [0.07]
    assert sum([np.float64(0.1)]) == np.float64(0.1)  # a sum of one term is that term
