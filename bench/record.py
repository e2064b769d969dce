"""Write a benchmark's results into its own marked section of docs/benchmarks.md.

Each benchmark owns the text between `<!-- bench:NAME -->` and `<!-- /bench:NAME -->`; a
missing section is appended. Everything else in the file is left as it is.
"""

from __future__ import annotations

from pathlib import Path


def _markers(name: str) -> tuple[str, str]:
    return f"<!-- bench:{name} -->", f"<!-- /bench:{name} -->"


def recorded(path: Path, name: str) -> str | None:
    """The text of section `name` of the file at `path`, if it has one."""
    start, end = _markers(name)
    old = path.read_text() if path.exists() else ""
    if start not in old or end not in old:
        return None
    return old.split(start, 1)[1].split(end, 1)[0].strip("\n")


def record(path: Path, name: str, text: str) -> None:
    """Replace (or append) section `name` of the markdown file at `path` with `text`."""
    start, end = _markers(name)
    block = f"{start}\n{text.rstrip()}\n{end}"
    old = path.read_text() if path.exists() else "# Benchmarks\n"
    if start in old and end in old:
        before, rest = old.split(start, 1)
        after = rest.split(end, 1)[1]
        new = before + block + after
    else:
        new = old.rstrip() + "\n\n" + block + "\n"
    path.write_text(new)
