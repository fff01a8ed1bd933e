"""Rewrite the generated parts of docs/ (the CLI reference) from the code: `make docs`.

A generated part sits between `<!-- generated: NAME -->` and `<!-- end generated -->`;
the text around it is written by hand and kept as it is. `cli` is the command line's
synopsis and global flags, `cli COMMAND` one command's usage, description and flags, all
read from `workspace_images.pipelines.arguments.build_parser()`. `tests/test_docs.py` fails when the
committed text differs from what this writes.

The generator lives here rather than in the installed package: it writes this
repository's docs/, which a user of the package never has.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path
from typing import Callable, Dict, List, Optional

ROOT = Path(__file__).resolve().parent.parent
CLI_DOC = ROOT / "docs" / "cli.md"
USAGE_WIDTH = 88
BLOCK = re.compile(r"(<!-- generated: (?P<name>[^>]*?) -->\n)(?P<body>.*?)(<!-- end generated -->)", re.S)


def _commands(parser: argparse.ArgumentParser) -> Dict[str, argparse.ArgumentParser]:
    """The parser's sub-commands by name, in the order they were added."""
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return dict(action.choices)


def _usage(parser: argparse.ArgumentParser) -> str:
    """The usage line, wrapped at a fixed width whatever the terminal."""
    formatter = argparse.HelpFormatter(parser.prog, width=USAGE_WIDTH)
    formatter.add_usage(parser.usage, parser._actions, parser._mutually_exclusive_groups)
    return formatter.format_help().strip()


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


def flag_table(parser: argparse.ArgumentParser) -> List[str]:
    """A Markdown table of every flag of `parser` but --help."""
    rows = ["| flag | meaning |", "|---|---|"]
    for action in parser._actions:
        if isinstance(action, (argparse._HelpAction, argparse._SubParsersAction)):
            continue
        rows.append(f"| `{_flag(action)}` | {_help(action, parser.prog)} |")
    return rows


def command_block(parser: argparse.ArgumentParser) -> str:
    """One command's reference: usage, description, flags."""
    lines = ["```text", _usage(parser), "```", ""]
    if parser.description:
        lines += [parser.description, ""]
    lines += flag_table(parser)
    return "\n".join(lines) + "\n"


def synopsis_block(parser: argparse.ArgumentParser) -> str:
    """The whole command line: usage, global flags, the commands with their one-line help."""
    subparsers = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    lines = ["```text", _usage(parser), "```", ""]
    if parser.description:
        lines += [parser.description, ""]
    lines += flag_table(parser) + ["", "| command | what it does |", "|---|---|"]
    for choice in subparsers._choices_actions:
        lines.append(f"| [`{choice.dest}`](#{choice.dest}) | {choice.help} |")
    return "\n".join(lines) + "\n"


def generators() -> Dict[str, Callable[[], str]]:
    """Every generated part's name and the function that writes it."""
    from workspace_images.pipelines.arguments import build_parser

    parser = build_parser()
    parts: Dict[str, Callable[[], str]] = {"cli": lambda: synopsis_block(parser)}
    for name, sub in _commands(parser).items():
        parts[f"cli {name}"] = lambda sub=sub: command_block(sub)
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
