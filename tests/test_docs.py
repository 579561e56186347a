"""The docs: every scenario key documented, the Quick start runnable by CI, every link inside the repository."""

import re
from pathlib import Path

from vefrac import config

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
DOCS = ROOT / "docs"
PAGES = [README, *sorted(DOCS.glob("*.md"))]


def schema_keys(schema: dict) -> list[str]:
    """Every leaf key path of a JSON schema ('fracture.toughness.cv'), through each variant of its unions."""
    defs = schema.get("$defs", {})

    def models(node: dict):
        if "$ref" in node:
            yield defs[node["$ref"].rsplit("/", 1)[1]]
        for combinator in ("anyOf", "oneOf", "allOf"):
            for sub in node.get(combinator, []):
                yield from models(sub)
        if "properties" in node:
            yield node

    def walk(node: dict, prefix: str) -> list[str]:
        out: list[str] = []
        for name, prop in node.get("properties", {}).items():
            subs = [m for m in models(prop) if "properties" in m]
            if not subs:
                out.append(prefix + name)
            for sub in subs:
                out += [p for p in walk(sub, prefix + name + ".") if p not in out]
        return out

    return walk(schema, "")


def test_every_scenario_key_is_in_the_keys_page():
    keys = schema_keys(config.Scenario.model_json_schema())
    assert "fracture.toughness.cv" in keys and "domain.radius" in keys and "invert.observation.crop" in keys
    table = (DOCS / "scenario-keys.md").read_text()
    missing = [k for k in keys if f"| `{k}` |" not in table]
    assert not missing, f"keys missing from docs/scenario-keys.md: {missing}"


def test_quick_start_is_two_lines_and_ci_runs_the_second():
    block = README.read_text().split("## Quick start", 1)[1].split("```", 2)[1]
    lines = [line for line in block.splitlines()[1:] if line.strip()]
    assert len(lines) == 2
    assert "vefrac run scenarios/square-mud.yaml" in lines[0]
    assert lines[1] in (ROOT / ".ci/run").read_text()


def test_readme_is_short():
    lines = len(README.read_text().splitlines())
    assert lines <= 260, f"README.md has {lines} lines; move detail to docs/"


def without_blocks(text: str) -> str:
    """Markdown text with fenced and indented code blocks removed."""
    text = re.sub(r"^```.*?^```", "", text, flags=re.S | re.M)
    return re.sub(r"(^[ \t]*\n)((?: {4}|\t).*(?:\n|$))+", r"\1", text, flags=re.M)


def without_code(text: str) -> str:
    """Markdown text with code blocks and inline code removed (no links there)."""
    return re.sub(r"`[^`]*`", "", without_blocks(text))


def link_targets(text: str) -> list[str]:
    """Targets of inline links and images, reference definitions, and HTML href/src attributes."""
    text = without_code(text)
    inline = re.findall(r"\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)", text)
    reference = re.findall(r"^\s*\[[^\]]+\]:\s*<?(\S+?)>?(?:\s|$)", text, flags=re.M)
    html = re.findall(r"(?:href|src)\s*=\s*[\"']([^\"']+)[\"']", text)
    return inline + reference + html


def heading_anchors(text: str) -> set[str]:
    """GitHub's anchors for the headings of a Markdown page."""
    anchors = set()
    for heading in re.findall(r"^#{1,6}\s+(.*?)\s*#*\s*$", without_blocks(text), flags=re.M):
        slug = re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")
        anchors.add(slug)
    return anchors


def test_link_parser_finds_what_it_must():
    text = ("see [model](docs/model.md#units) and ![pic](docs/a.png \"title\")\n"
            "[ref]: ../outside.md\n<img src=\"x.png\">\n`[not](a link)`\n```\n[nor](this)\n```\n")
    assert link_targets(text) == ["docs/model.md#units", "docs/a.png", "../outside.md", "x.png"]
    assert heading_anchors("## Units and scales\n### The φ-step (FEM)\n### `vefrac run`: a layer") == {
        "units-and-scales", "the-φ-step-fem", "vefrac-run-a-layer"}


def test_every_relative_link_resolves_inside_the_repository():
    assert len(PAGES) > 5, "docs/ pages are missing"
    bad = []
    for page in PAGES:
        for target in link_targets(page.read_text()):
            if re.match(r"^[a-z][a-z0-9+.-]*:", target, flags=re.I):  # https:, mailto: ...
                continue
            path, _, anchor = target.partition("#")
            resolved = (page.parent / path).resolve() if path else page
            where = f"{page.relative_to(ROOT)}: {target}"
            if not resolved.is_relative_to(ROOT):
                bad.append(f"{where} (leaves the repository)")
            elif not resolved.exists():
                bad.append(f"{where} (no such file)")
            elif anchor and resolved.suffix == ".md" and anchor not in heading_anchors(resolved.read_text()):
                bad.append(f"{where} (no such heading)")
    assert not bad, "broken links:\n" + "\n".join(bad)


def test_no_page_points_at_files_outside_the_repository():
    for page in PAGES:
        assert "../shared" not in page.read_text(), f"{page.relative_to(ROOT)} refers to ../shared"


def test_the_docs_index_lists_every_page():
    index = (DOCS / "index.md").read_text()
    missing = [p.name for p in PAGES if p.parent == DOCS and p.name != "index.md" and f"({p.name})" not in index]
    assert not missing, f"docs/index.md does not list {missing}"
