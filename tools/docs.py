"""Rewrite the generated parts of docs/ (the CLI reference) from the code: `make docs`.

A generated part sits between `<!-- generated: NAME -->` and `<!-- end generated -->`;
the text around it is written by hand and kept as it is. `cli` is the command line's
synopsis and global flags, `cli COMMAND` one command's usage, description and flags, all
read from `workspace_images.pipelines.arguments.build_parser()` through public names only: the
flags and commands its parsers keep (`flags`, `commands`) and argparse's `format_usage()`.
`tests/test_docs.py` fails when the committed text differs from what this writes.

The generator lives here rather than in the installed package: it writes this
repository's docs/, which a user of the package never has.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Dict, List, Optional

if TYPE_CHECKING:
    from workspace_images.pipelines.arguments import ArgumentParser

ROOT = Path(__file__).resolve().parent.parent
CLI_DOC = ROOT / "docs" / "cli.md"
USAGE_WIDTH = 88
BLOCK = re.compile(r"(<!-- generated: (?P<name>[^>]*?) -->\n)(?P<body>.*?)(<!-- end generated -->)", re.S)


class FixedWidthFormatter(argparse.HelpFormatter):
    """argparse's formatter at USAGE_WIDTH columns, whatever the terminal it runs in."""

    def __init__(self, prog: str) -> None:
        super().__init__(prog, width=USAGE_WIDTH)


def _usage(parser: ArgumentParser) -> str:
    """The usage line, wrapped at a fixed width whatever the terminal."""
    parser.formatter_class = FixedWidthFormatter
    return parser.format_usage().strip()


def _flag(action: argparse.Action) -> str:
    """`--db PATH`, `-v, --verbose`, or a positional's metavar."""
    if not action.option_strings:
        return str(action.metavar or action.dest.upper())
    if action.nargs == 0:
        return ", ".join(action.option_strings)
    metavar = action.metavar or action.dest.upper()
    return ", ".join(f"{option} {metavar}" for option in action.option_strings)


def _help(action: argparse.Action, prog: str) -> str:
    """The flag's help with argparse's %(default)s expanded, safe inside a table cell."""
    text = (action.help or "") % {"default": action.default, "prog": prog, "dest": action.dest}
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace("|", "\\|")


def flag_table(parser: ArgumentParser) -> List[str]:
    """A Markdown table of every flag of `parser` but --help."""
    rows = ["| flag | meaning |", "|---|---|"]
    for action in parser.flags:
        rows.append(f"| `{_flag(action)}` | {_help(action, parser.prog)} |")
    return rows


def command_block(parser: ArgumentParser) -> str:
    """One command's reference: usage, description, flags."""
    lines = ["```text", _usage(parser), "```", ""]
    if parser.description:
        lines += [parser.description, ""]
    lines += flag_table(parser)
    return "\n".join(lines) + "\n"


def synopsis_block(parser: ArgumentParser) -> str:
    """The whole command line: usage, global flags, the commands with their one-line help."""
    lines = ["```text", _usage(parser), "```", ""]
    if parser.description:
        lines += [parser.description, ""]
    lines += flag_table(parser) + ["", "| command | what it does |", "|---|---|"]
    for command in parser.commands.values():
        lines.append(f"| [`{command.name}`](#{command.name}) | {command.help} |")
    return "\n".join(lines) + "\n"


def generators() -> Dict[str, Callable[[], str]]:
    """Every generated part's name and the function that writes it."""
    from workspace_images.pipelines.arguments import build_parser

    parser = build_parser()
    parts: Dict[str, Callable[[], str]] = {"cli": lambda: synopsis_block(parser)}
    for name, command in parser.commands.items():
        parts[f"cli {name}"] = lambda sub=command.parser: command_block(sub)
    return parts


def blocks(text: str) -> Dict[str, str]:
    """The generated parts of a Markdown text, by name."""
    return {match["name"]: match["body"] for match in BLOCK.finditer(text)}


def render(text: str, parts: Optional[Dict[str, Callable[[], str]]] = None) -> str:
    """`text` with every generated part that has a generator rewritten; others are left as they are."""
    parts = generators() if parts is None else parts

    def rewrite(match: re.Match) -> str:
        make = parts.get(match["name"])
        body = make() if make else match["body"]
        return f"{match.group(1)}{body}{match.group(4)}"

    return BLOCK.sub(rewrite, text)


def main() -> int:
    """Rewrite docs/cli.md in place; name the parts the docs lack or the code lacks."""
    text = CLI_DOC.read_text(encoding="utf-8")
    parts = generators()
    new = render(text, parts)
    if new != text:
        CLI_DOC.write_text(new, encoding="utf-8")
        print(f"rewrote {CLI_DOC.relative_to(ROOT)}")
    present = blocks(text)
    for name in sorted(set(parts) - set(present)):
        print(f"docs/cli.md has no block <!-- generated: {name} -->: add one where it belongs", file=sys.stderr)
    for name in sorted(set(present) - set(parts)):
        print(f"docs/cli.md: block {name!r} has no generator (left as it is)", file=sys.stderr)
    return 1 if set(parts) - set(present) else 0


if __name__ == "__main__":
    sys.exit(main())
