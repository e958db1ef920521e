"""What the README and docs/ say about the code is what the code is: the command synopsis
names only commands and options the CLI has, the layout page names only modules that exist
(and every package), and every link between the pages leads somewhere."""

from __future__ import annotations

import re

from conftest import ROOT

from facessl.cli import build_parser

README = ROOT / "README.md"
DOCS = ROOT / "docs"
SRC = ROOT / "src" / "facessl"


def _subcommand_help(words: list[str]) -> str:
    parser = build_parser()
    for word in words:
        sub = next(a for a in parser._actions if isinstance(a.choices, dict))
        parser = sub.choices[word]
    return parser.format_help()


def test_every_option_in_the_synopsis_exists():
    synopsis = re.search(r"```text\n(facessl .*?)```", README.read_text(), re.S).group(1)
    entries = re.split(r"\n(?=facessl )", synopsis.strip())
    assert len(entries) >= 15
    for entry in entries:
        words = entry.split()
        command = words[1:3] if words[1] == "data" else words[1:2]
        shown = _subcommand_help(command)
        for option in set(re.findall(r"--[a-z][a-z-]*", entry)):
            assert option in shown, f"`facessl {' '.join(command)}` has no {option}"


def test_the_layout_page_names_modules_that_exist_and_every_package():
    layout = (DOCS / "layout.md").read_text()
    for package, files in re.findall(r"`facessl\.(\w+)`[^|]*\| (.*?) \|", layout):
        for name in re.findall(r"`(\w+\.py|static/)`", files):
            assert (SRC / package / name).exists(), f"docs/layout.md: {package}/{name}"
    for path in re.findall(r"`((?:\w+/)*\w+\.py)`", layout):
        assert ((SRC / path).exists() or (ROOT / path).exists()
                or any(SRC.glob(f"*/{path}"))), f"docs/layout.md: {path}"
    packages = {p.parent.name for p in SRC.glob("*/__init__.py")}
    for package in packages:
        assert f"`{package}/" in layout or f"`facessl.{package}`" in layout, (
            f"docs/layout.md does not say where {package}/ fits")


def test_every_link_between_the_pages_leads_somewhere():
    for page in [README, *DOCS.glob("*.md"), ROOT / "BENCHMARKS.md"]:
        for target in re.findall(r"\]\(((?!https?:)[^)#]+)(?:#[^)]*)?\)", page.read_text()):
            assert (page.parent / target).exists(), f"{page.name} links to {target}"


def _sections(text: str) -> dict[str, str]:
    """Each heading's anchor (as GitHub makes it) -> the text under it, to the next heading
    of the same or a higher level."""
    out, heads = {}, list(re.finditer(r"^(#+) (.+)$", text, re.M))
    for i, head in enumerate(heads):
        level = len(head[1])
        end = next((h.start() for h in heads[i + 1:] if len(h[1]) <= level), len(text))
        anchor = re.sub(r"[^\w\- ]", "", head[2].lower()).replace(" ", "-")
        out[anchor] = text[head.end():end]
    return out


FIGURE = re.compile(r"\*\*([^*]*?\d[^*]*?)\*\*")  # a summary's headline figures are bold


def _holds(text: str, number: str) -> bool:
    """Whether `text` states `number` as a whole number: "5" is not in "5.2", "15", "0.5" or
    "1,500", so a figure cannot pass by being part of another."""
    whole = rf"(?<!\d)(?<!\d[.,]){re.escape(number)}(?!\d)(?![.,]\d)"
    return re.search(whole, text) is not None


def test_every_headline_figure_of_the_benchmarks_summary_is_in_its_section():
    """A bold figure in BENCHMARKS.md's summary is the figure its linked section measured
    (with the command beside it), so the two cannot drift apart."""
    text = (ROOT / "BENCHMARKS.md").read_text()
    summary = text[text.index("## Summary"):text.index("\n## ", text.index("## Summary") + 1)]
    sections = _sections(text)
    checked = 0
    for row in summary.splitlines():
        link = re.search(r"\]\(#([^)]+)\)", row)
        if not row.startswith("| ") or link is None:
            continue
        section = sections[link[1]]
        for figure in FIGURE.findall(row.split(" | ")[1]):
            for number in re.findall(r"\d[\d,]*(?:\.\d+)?", figure):
                assert _holds(section, number), f"summary figure {number} ({figure}) is not " \
                                                f"in section #{link[1]}"
                checked += 1
    assert checked >= 20


def test_the_readme_quotes_the_benchmarks_figures():
    """Every measured figure the README states with a percent, ms or a score is one
    BENCHMARKS.md holds."""
    benchmarks = (ROOT / "BENCHMARKS.md").read_text()
    readme = README.read_text()
    quoted = re.findall(r"(\d+(?:\.\d+)?) ?(?:%|ms\b)|AUROC[^)]*? (0\.\d+)|F (0\.\d+)", readme)
    numbers = {n for group in quoted for n in group if n}
    assert len(numbers) >= 10
    for number in numbers:
        assert _holds(benchmarks, number), f"the README's {number} is not in BENCHMARKS.md"
