"""Every reference to a design note points at a file in docs/ and, with a section sign, at a numbered heading in it:
docstrings cite what a user of the package can open."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
REFERENCE = re.compile(r"docs/([A-Za-z0-9_]+\.md)((?:[ ,/]+§\s?\d+)*)")


def references() -> list[tuple[str, str, list[str]]]:
    out = []
    files = [*ROOT.glob("src/**/*.py"), *ROOT.glob("tests/**/*.py"), *ROOT.glob("benchmarks/*.py"),
             *ROOT.glob("configs/*.yaml"), ROOT / "README.md", *ROOT.glob("docs/*.md")]
    for path in files:
        for m in REFERENCE.finditer(path.read_text(encoding="utf-8")):
            out.append((str(path.relative_to(ROOT)), m.group(1), re.findall(r"§\s?(\d+)", m.group(2))))
    return out


def test_every_cited_design_note_and_section_exists():
    refs = references()
    assert len(refs) > 20  # the code does cite them
    for where, name, sections in refs:
        doc = ROOT / "docs" / name
        assert doc.is_file(), f"{where} cites docs/{name}, which does not exist"
        headings = set(re.findall(r"^##+ (\d+)\.", doc.read_text(encoding="utf-8"), flags=re.M))
        for s in sections:
            assert s in headings, f"{where} cites docs/{name} §{s}, which has no section {s}"


def test_no_reference_to_notes_outside_the_repository():
    stale = re.compile(r"\b(RL_REFERENCE|V3_REFERENCE|INTERFACES\.md|ARCHITECTURE\.md|TINY_RECIPE)\b")
    for path in [*ROOT.glob("src/**/*.py"), *ROOT.glob("configs/*.yaml")]:
        for i, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            for m in stale.finditer(line):
                assert line[max(0, m.start() - 5):m.start()] == "docs/", f"{path.relative_to(ROOT)}:{i}: {line.strip()}"
