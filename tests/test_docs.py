"""The README documents every scenario key and keeps its Quick start runnable by CI."""

from pathlib import Path

from vefrac import config

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()


def test_every_scenario_key_is_in_the_readme_table():
    table = README.split("## Scenario keys", 1)[1]
    paths = config.schema_paths()
    leaves = [p for p in paths if not any(q.startswith(p + ".") for q in paths)]
    missing = [p for p in leaves if p not in ("name", "seed") and f"`{p}`" not in table]
    assert not missing, f"undocumented keys: {missing}"


def test_quick_start_is_two_lines_and_ci_runs_the_second():
    block = README.split("## Quick start", 1)[1].split("```", 2)[1]
    lines = [line for line in block.splitlines()[1:] if line.strip()]
    assert len(lines) == 2
    assert "vefrac run scenarios/square-mud.yaml" in lines[0]
    assert lines[1] in (ROOT / ".ci" / "run").read_text()
