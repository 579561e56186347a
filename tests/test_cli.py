"""The bad-input contract of the command line, and round trips of good input.

Any bad input (scenario, override, image, path, device) must end with exit code 2, one
message on stderr that names the key or file and says what is allowed, no traceback, and no
output folder. Most cases run in-process through `vefrac.cli.main` (a subprocess pays the
torch import each time); a few run as real processes to prove the contract at that level.
"""

import struct
import subprocess
import sys
import zlib
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from vefrac import config
from vefrac.cli import main
from vefrac.errors import InputError

ROOT = Path(__file__).resolve().parents[1]
BAD = Path(__file__).resolve().parent / "bad"
SQUARE = str(ROOT / "scenarios" / "square-mud.yaml")


def _cuda() -> bool:
    import torch

    return torch.cuda.is_available()


# (arguments after `vefrac run`, exit code, what the message must contain). A bare *.yaml
# name is a file in tests/bad/; "{tmp}" is a per-test folder holding images made below.
CASES = [
    # the file itself
    (["malformed-yaml.yaml"], 2, "malformed YAML at line 3"),
    (["bad-indent.yaml"], 2, "malformed YAML at line 3"),
    (["empty.yaml"], 2, ("scenario file", "empty.yaml' is empty", "scenarios/square-mud.yaml")),
    (["only-comments.yaml"], 2, ("only-comments.yaml' is empty", "scenarios/square-mud.yaml")),
    (["top-list.yaml"], 2, ("top-list.yaml", "top level must be a mapping", "not a list")),
    (["top-scalar.yaml"], 2, ("top-scalar.yaml", "top level must be a mapping")),
    (["no-such-scenario.yaml"], 2, ("no-such-scenario.yaml", "does not exist")),
    ([str(BAD / "ok.png")], 2, ("ok.png", "cannot be read")),
    # unknown keys, with the close name suggested
    (["unknown-top-key.yaml"], 2, ("materal: unknown key", "did you mean 'material'")),
    (["unknown-nested-key.yaml"], 2, ("material.lame_muu", "did you mean 'material.lame_mu'")),
    (["unknown-toughness-key.yaml"], 2, ("fracture.toughness.correlation_lenght",
                                         "did you mean 'fracture.toughness.correlation_length'")),
    (["unknown-domain-key.yaml"], 2, ("domain.radus", "did you mean 'domain.radius'")),
    (["misplaced-key.yaml"], 2, ("t_end: unknown key", "did you mean 'shrinkage.t_end'")),
    (["key-of-another-shape.yaml"], 2, ("domain.radius: unknown key", "for shape: disk")),
    # wrong types
    (["string-for-number.yaml"], 2, "material.lame_mu: must be a number > 0 (got 'one')"),
    (["quoted-number.yaml"], 2, "shrinkage.t_end: must be a number > 0 (got '0.1')"),
    (["list-for-mapping.yaml"], 2, ("material: must be a mapping with keys", "lame_mu")),
    (["bool-for-number.yaml"], 2, "material.lame_lambda: must be a number >= 0 (got true)"),
    (["float-for-int.yaml"], 2, "output.snapshots: must be a whole number from 2 to 10000 (got 2.5)"),
    (["number-for-bool.yaml"], 2, "fracture.enabled: must be true or false (got 3)"),
    (["mapping-for-list.yaml"], 2, "domain.size: must be a list of 2 numbers > 0"),
    (["size-three.yaml"], 2, "domain.size: must be a list of 2 numbers > 0 (got 3 items"),
    (["bad-name.yaml"], 2, "name: may contain only letters, digits"),
    # non-finite and out-of-range values
    (["nan-modulus.yaml"], 2, "material.lame_mu: must be a finite number > 0 (got .nan)"),
    (["inf-t-end.yaml"], 2, "shrinkage.t_end: must be a finite number > 0 (got .inf)"),
    (["zero-modulus.yaml"], 2, "material.lame_mu: must be a number > 0 (got 0)"),
    (["negative-lambda.yaml"], 2, "material.lame_lambda: must be a number >= 0 (got -1.0)"),
    (["negative-length-scale.yaml"], 2, "fracture.length_scale: must be a number > 0"),
    (["zero-toughness.yaml"], 2, "fracture.toughness.mean: must be a number > 0"),
    (["zero-t-end.yaml"], 2, "shrinkage.t_end: must be a number > 0 (got 0)"),
    (["negative-size.yaml"], 2, "domain.size[1]: must be a number > 0 (got -1.0)"),
    (["snapshots-too-few.yaml"], 2, "output.snapshots: must be a whole number from 2 to 10000"),
    # choices
    (["unknown-split.yaml"], 2, "material.split: must be one of 'amor', 'spectral', 'none'"),
    (["unknown-shape.yaml"], 2, ("domain.shape: must be one of 'rectangle', 'disk'", "'triangle'")),
    (["missing-shape.yaml"], 2, ("domain.shape: missing", "'rectangle'")),
    (["unknown-kind.yaml"], 2, ("fracture.toughness.kind: must be one of", "'weibull'")),
    (["bad-solver-time.yaml"], 2, "solver.time: must be one of 'load_stepping', 'space_time'"),
    # polygons
    (["polygon-two-vertices.yaml"], 2, ("domain.vertices", "at least 3 vertices")),
    (["polygon-bowtie.yaml"], 2, ("domain.vertices", "edges cross")),
    (["polygon-missing-vertices.yaml"], 2, "domain.vertices: missing"),
    # files the scenario points at
    (["mask-missing-image.yaml"], 2, ("no-such-picture.png", "does not exist")),
    (["mask-text-image.yaml"], 2, ("not-an-image.png", "PNG, JPEG or TIFF expected")),
    (["mask-empty-image.yaml"], 2, ("empty.png", "cannot be read as an image")),
    (["toughness-missing-image.yaml"], 2, ("no-such-toughness.png", "does not exist")),
    (["toughness-text-image.yaml"], 2, ("not-an-image.png", "cannot be read as an image")),
    (["toughness-range-reversed.yaml"], 2, ("fracture.toughness.range", "Gmin <= Gmax")),
    (["mesh-missing.yaml"], 2, ("domain.file", "no-such-dish.msh", "does not exist")),
    ([SQUARE, "--set", "domain={shape: mask, image: {tmp}/tiny.png, size: [1, 1]}"], 2,
     ("tiny.png", "not a 2D picture")),
    ([SQUARE, "--set", "domain={shape: mask, image: {tmp}/truncated.png, size: [1, 1]}"], 2,
     ("truncated.png", "cannot be read as an image")),
    ([SQUARE, "--set", "fracture.toughness={kind: image, image: {tmp}/text.png, range: [1, 2]}"], 2,
     ("--set fracture.toughness=", "text.png", "cannot be read as an image")),
    # overrides
    ([SQUARE, "--set", "fracture.toughness.seed=-1"], 2, ("fracture.toughness.seed", ">= 0", "got -1")),
    ([SQUARE, "--set", "fracture.toughness={kind: constant, seed: 3}"], 2,
     ("fracture.toughness.seed: unknown key", "kind: lognormal or network")),
    ([SQUARE, "--set", "invert.crack_noise=0"], 2, ("invert.crack_noise", "> 0", "got 0")),
    ([SQUARE, "--set", "invert.crack_noise=abc"], 2, ("invert.crack_noise", "must be a number")),
    ([SQUARE, "--set", "invert.gradient=sharp"], 2, ("invert.gradient", "'energy_gap', 'read_gap'", "got 'sharp'")),
    ([SQUARE, "--set", "material.lame_mu"], 2, ("--set 'material.lame_mu'", "KEY.PATH=VALUE")),
    ([SQUARE, "--set", "=1"], 2, ("--set", "KEY.PATH=VALUE")),
    ([SQUARE, "--set", "foo=1"], 2, ("--set foo: unknown key", "allowed here: domain")),
    ([SQUARE, "--set", "material.lame_muu=2"], 2, ("--set material.lame_muu",
                                                   "did you mean 'material.lame_mu'")),
    ([SQUARE, "--set", "solver.pionts=1024"], 2, ("--set solver.pionts", "did you mean 'solver.points'")),
    ([SQUARE, "--set", "domain.radius=1"], 2, ("--set domain.radius: unknown key", "for shape: disk")),
    ([SQUARE, "--set", "phi_bias=-1"], 2, ("--set phi_bias", "did you mean 'solver.phi_bias'")),
    ([SQUARE, "--set", "domain.shape=disk"], 2, ("--set domain.shape=disk", "domain.size: unknown key",
                                                 "allowed here: radius, shape")),
    ([SQUARE, "--set", "material.lame_mu.x=1"], 2, ("--set material.lame_mu.x", "not a mapping")),
    ([SQUARE, "--set", "output.snapshots.x=1"], 2, ("--set output.snapshots.x", "not a mapping")),
    ([SQUARE, "--set", "material.lame_mu=-1"], 2, ("--set material.lame_mu=-1",
                                                   "material.lame_mu: must be a number > 0")),
    ([SQUARE, "--set", "material.lame_mu=abc"], 2, ("--set material.lame_mu=abc", "must be a number")),
    ([SQUARE, "--set", "material=3"], 2, ("--set material=3", "material: must be a mapping")),
    ([SQUARE, "--set", "domain.periodic=[1, 0]"], 2, ("2 problems", "domain.periodic[0]: must be true or false")),
    # the command line and the machine
    ([SQUARE, "--device", "gpu"], 2, ("--device", "invalid choice")),
    ([SQUARE, "--resume"], 2, ("--resume", "no checkpoint")),
    pytest.param([SQUARE, "--device", "cuda"], 2, ("--device cuda", "--device cpu"),
                 marks=pytest.mark.skipif("_cuda()", reason="a GPU is present")),
]

# The same contract, proven at the process level (exit status, no traceback, no folder).
SUBPROCESS_CASES = [
    (["malformed-yaml.yaml"], 2, "malformed YAML"),
    (["empty.yaml"], 2, "is empty"),
    (["no-such-scenario.yaml"], 2, "does not exist"),
    ([SQUARE, "--set", "material.lame_mu"], 2, "--set"),
    pytest.param([SQUARE, "--device", "cuda"], 2, "--device cuda",
                 marks=pytest.mark.skipif("_cuda()", reason="a GPU is present")),
]


def _png(path: Path, width: int, height: int) -> bytes:
    """A grey 8-bit PNG written by hand (no dependency on how PIL writes)."""
    def chunk(tag: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data))

    rows = b"".join(b"\x00" + bytes([128]) * width for _ in range(height))
    data = (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b""))
    path.write_bytes(data)
    return data


@pytest.fixture
def images(tmp_path):
    """Bad images made here: 1x1 pixels, a PNG cut short, a text file named .png."""
    _png(tmp_path / "tiny.png", 1, 1)
    whole = _png(tmp_path / "whole.png", 32, 32)
    (tmp_path / "truncated.png").write_bytes(whole[: len(whole) // 2])
    (tmp_path / "text.png").write_text("name: not a picture\n")
    return tmp_path


def _argv(args, tmp: Path) -> list[str]:
    out = []
    for a in args:
        a = a.replace("{tmp}", str(tmp))
        out.append(str(BAD / a) if a.endswith(".yaml") and "/" not in a and "=" not in a else a)
    return out


def _expect(stderr: str, wanted) -> None:
    for text in (wanted,) if isinstance(wanted, str) else wanted:
        assert text in stderr, f"{text!r} not in message:\n{stderr}"
    assert "Traceback" not in stderr
    assert stderr.count("error:") == 1, f"expected one message:\n{stderr}"


@pytest.mark.parametrize("args, code, wanted", CASES)
def test_bad_input_in_process(args, code, wanted, images, capsys):
    out = images / "out" / "x"
    try:
        rc = main(["run", *_argv(args, images), "--out", str(out), "--quiet"])
    except SystemExit as exc:  # argparse's own usage errors
        rc = exc.code
    captured = capsys.readouterr()
    assert rc == code, captured.err
    _expect(captured.err, wanted)
    assert captured.out == ""
    assert not (images / "out").exists()


@pytest.mark.parametrize("args, code, wanted", SUBPROCESS_CASES)
def test_bad_input_as_a_process(args, code, wanted, tmp_path):
    out = tmp_path / "out" / "x"
    proc = subprocess.run([sys.executable, "-m", "vefrac", "run", *_argv(args, tmp_path), "--out", str(out)],
                          capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert proc.returncode == code, proc.stderr
    _expect(proc.stderr, wanted)
    assert not (tmp_path / "out").exists()


def test_corpus_is_covered():
    """Every file in tests/bad/ is a case, and the corpus stays large."""
    used = {a for case in CASES for a in (case.values[0] if hasattr(case, "values") else case[0])}
    scenarios = {p.name for p in BAD.glob("*.yaml")}
    assert len(scenarios) >= 30
    assert scenarios <= used, f"not in CASES: {sorted(scenarios - used)}"


@pytest.mark.parametrize("text, wanted", [
    ("", "is empty"),
    ("  \n\t\n", "is empty"),
    ("# only a comment\n", "is empty"),
    ("---\n# comments between document markers\n...\n", "is empty"),
    ("null\n", "not null"),
    ("- a\n- b\n", "not a list"),
    ("0.5\n", "not a number"),
    ("just words\n", "not a single value"),
])
def test_check_refuses_an_empty_or_non_mapping_scenario(text, wanted, tmp_path, capsys):
    """`vefrac check` says what is wrong with the file instead of printing every default."""
    path = tmp_path / "mine.yaml"
    path.write_text(text)
    assert main(["check", str(path)]) == 2
    captured = capsys.readouterr()
    _expect(captured.err, ("mine.yaml", wanted))
    assert captured.out == ""
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mine.yaml"]


def test_an_explicit_empty_mapping_is_the_defaults(tmp_path):
    """`{}` says "every default" in so many words: it loads (only a file with no content is refused)."""
    path = tmp_path / "defaults.yaml"
    path.write_text("{}  # every default\n")
    assert config.load_scenario(path) == config.validate_scenario({"name": "defaults"})


# ----------------------------------------------------------------------------- good input


def test_check_prints_a_scenario_that_loads_back(capsys):
    assert main(["check", SQUARE]) == 0
    printed = capsys.readouterr().out
    again = config.validate_scenario(yaml.safe_load(printed))
    assert again == config.load_scenario(SQUARE)
    assert again.name == "square-mud"


def test_set_takes_a_list_value(capsys):
    assert main(["check", SQUARE, "--set", "domain.size=[2,1]"]) == 0
    assert yaml.safe_load(capsys.readouterr().out)["domain"]["size"] == [2.0, 1.0]
    assert config.load_scenario(SQUARE, ["domain.size=[2,1]"]).domain.size == [2.0, 1.0]


def test_set_reaches_a_nested_key_absent_from_the_file(capsys, tmp_path):
    scenario = tmp_path / "no-solver.yaml"
    scenario.write_text("domain: {shape: disk, radius: 0.4}\n")
    assert main(["check", str(scenario), "--set", "solver.points=1024", "--set", "solver.time=space_time"]) == 0
    solver = yaml.safe_load(capsys.readouterr().out)["solver"]
    assert solver["points"] == 1024 and solver["time"] == "space_time"


def test_set_replaces_a_whole_mapping():
    scn = config.load_scenario(SQUARE, ["domain={shape: disk, radius: 0.3}"])
    assert scn.domain.shape == "disk" and scn.domain.radius == 0.3


# ----------------------------------------------------------------------------- former escapes

# Bad input that once escaped as another exception (a traceback at the command line).
ESCAPES = [
    pytest.param("name: 2001-13-01\n", [], id="yaml-impossible-date"),
    pytest.param("seed: !!int abc\n", [], id="yaml-bad-int-tag"),
    pytest.param("domain: {shape: mask, image: ~no_such_user_zz/a.png, size: [1, 1]}\n", [],
                 id="image-unknown-home"),
    pytest.param("domain: {shape: mesh, file: " + "x" * 5000 + ".msh}\n", [], id="mesh-name-too-long"),
]


@pytest.mark.parametrize("text, overrides", ESCAPES)
def test_odd_yaml_and_paths_become_input_errors(text, overrides, tmp_path):
    path = tmp_path / "s.yaml"
    path.write_text(text)
    with pytest.raises(InputError):
        config.load_scenario(path, overrides)


def test_a_file_name_with_spaces_is_a_valid_scenario(tmp_path):
    path = tmp_path / "my mud.yaml"
    path.write_text("shrinkage: {t_end: 0.1}\n")
    config.load_scenario(path)


# ----------------------------------------------------------------------------- property


PATHS = [tuple(p.split(".")) for p in config.schema_paths()]
KEYS = sorted({p[-1] for p in PATHS})
VALUES = ["rectangle", "disk", "polygon", "mask", "mesh", "constant", "lognormal", "network",
          "image", "amor", "spectral", "none", "at2", "space_time", "float64", "x.png", ""]
TEXT = st.text(st.characters(blacklist_categories=("Cs",)), max_size=12)
SCALARS = (st.none() | st.booleans() | st.integers(-10**20, 10**20) | st.floats(allow_nan=True)
           | st.sampled_from(VALUES) | TEXT)
NAMES = st.sampled_from(KEYS) | TEXT
DOCS = st.recursive(SCALARS, lambda kids: st.lists(kids, max_size=4)
                    | st.dictionaries(NAMES | st.integers(0, 3), kids, max_size=5), max_leaves=25)
TOP = st.dictionaries(st.sampled_from(KEYS) | TEXT, DOCS, max_size=6)


def _mutant(path: tuple[str, ...], value) -> dict:
    """The shipped square scenario with one key (real or not) set to `value`."""
    data = yaml.safe_load(Path(SQUARE).read_text())
    node = data
    for part in path[:-1]:
        node = node.setdefault(part, {}) if isinstance(node.get(part, {}), dict) else {}
    node[path[-1]] = value
    return data


MUTANTS = st.builds(_mutant, st.sampled_from(PATHS) | st.lists(NAMES, min_size=1, max_size=3).map(tuple),
                    SCALARS | DOCS)
FLOW = DOCS.map(lambda v: yaml.safe_dump(v, default_flow_style=True).removesuffix("\n...\n").strip())
OVERRIDES = st.lists(st.builds(
    lambda path, sep, value: ".".join(path) + sep + value,
    st.sampled_from(PATHS) | st.lists(NAMES, min_size=1, max_size=4),
    st.sampled_from(["=", "=", "=", "", "=="]), FLOW | TEXT,
), max_size=3)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                 HealthCheck.too_slow])
@given(doc=st.one_of(MUTANTS, MUTANTS, TOP, DOCS, TEXT, st.binary(max_size=40)), overrides=OVERRIDES)
def test_any_document_loads_or_says_why(doc, overrides, tmp_path):
    path = tmp_path / "random.yaml"
    if isinstance(doc, bytes):
        path.write_bytes(doc)
    elif isinstance(doc, str) and not isinstance(doc, bool):
        path.write_text(doc, encoding="utf-8")
    else:
        path.write_text(yaml.safe_dump(doc), encoding="utf-8")
    try:
        scn = config.load_scenario(path, overrides)
    except InputError as exc:  # one message: a single line, or a numbered list of problems
        message = str(exc)
        assert message.strip() and ("\n" not in message or " problems:\n" in message), message
    else:
        assert isinstance(scn, config.Scenario)
