"""The commands of runbooks/*.md, as the runbook tests read them (unit: parsed; integration: run).

Commands are the lines of the pages' ```bash blocks (native) and ```bash cloud blocks (AWS CLI).
Each page sets the variables it needs (`ENTITY=finance/transactions`) before using them.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RUNBOOKS = ROOT / "runbooks"
PAGES = sorted(RUNBOOKS.glob("*.md"))
BLOCK_RE = re.compile(r"^```bash( cloud)?\n(.*?)^```", re.S | re.M)
ASSIGNMENT_RE = re.compile(r"^[A-Z_][A-Z0-9_]*=")
OPERATORS = {"|", "||", "&&", ";", "&"}


@dataclass(frozen=True)
class Command:
    """One simple command of a runbook, its variables expanded."""

    page: str
    cloud: bool
    argv: tuple[str, ...]

    def __str__(self) -> str:
        return f"{self.page}: {shlex.join(self.argv)}"


def logical_lines(block: str) -> Iterator[str]:
    """The block's lines, continuations joined, without blank and comment lines."""
    for line in re.sub(r"\\\n\s*", " ", block).splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            yield line


def simple_commands(line: str) -> Iterator[list[str]]:
    """The words of each simple command of a line (split at pipes, `&&`, `||`, `;`)."""
    lexer = shlex.shlex(line, posix=True, punctuation_chars="|&;")
    lexer.whitespace_split = True
    lexer.commenters = "#"
    current: list[str] = []
    for token in lexer:
        if token in OPERATORS:
            if current:
                yield current
            current = []
        else:
            current.append(token)
    if current:
        yield current


def expand(token: str, variables: dict[str, str]) -> str:
    """`token` with `$NAME`/`${NAME}` replaced by the page's values (others left as written)."""
    return re.sub(
        r"\$\{?([A-Z_][A-Z0-9_]*)\}?", lambda m: variables.get(m.group(1), m.group(0)), token
    )


def page_commands(page: Path) -> list[Command]:
    """The page's commands in order, with the page's own variables (NAME=value) expanded."""
    variables: dict[str, str] = {}
    commands = []
    for match in BLOCK_RE.finditer(page.read_text(encoding="utf-8")):
        cloud = bool(match.group(1))
        for line in logical_lines(match.group(2)):
            for words in simple_commands(line):
                while words and ASSIGNMENT_RE.match(words[0]):
                    name, _, value = words.pop(0).partition("=")
                    variables[name] = expand(value, variables)
                if words:
                    argv = tuple(expand(word, variables) for word in words)
                    commands.append(Command(page.stem, cloud, argv))
    return commands


@dataclass(frozen=True)
class Line:
    """One native command line of a runbook, as an operator would paste it into bash."""

    page: str
    text: str
    #: The page's variables set above this line.
    variables: tuple[tuple[str, str], ...]
    #: The words of the line's first simple command, variables expanded.
    argv: tuple[str, ...]

    def __str__(self) -> str:
        return f"{self.page}: {self.text}"


def page_lines(page: Path) -> list[Line]:
    """The page's native command lines in order (assignment-only lines set variables)."""
    variables: dict[str, str] = {}
    lines = []
    for match in BLOCK_RE.finditer(page.read_text(encoding="utf-8")):
        if match.group(1):
            continue
        for text in logical_lines(match.group(2)):
            words = next(simple_commands(text), [])
            assignments = []
            while words and ASSIGNMENT_RE.match(words[0]):
                assignments.append(words.pop(0).partition("="))
            if not words:
                for name, _, value in assignments:
                    variables[name] = expand(value, variables)
                continue
            # `NAME=value cmd ...` sets NAME for that command only: bash does it from the text.
            argv = tuple(expand(word, variables) for word in words)
            lines.append(Line(page.stem, text, tuple(variables.items()), argv))
    return lines
