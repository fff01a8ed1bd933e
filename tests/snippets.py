"""The docs' fenced snippets, read from README.md and docs/, and what runs them: the values a test
puts in place of a reader's, and bash in a process group of its own. test_docs runs every snippet;
test_wheel runs the README's from an installed wheel."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import textwrap
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Tuple

from workspace_images.simulator import Simulator

ROOT = Path(__file__).resolve().parent.parent
FILES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


@dataclass(frozen=True)
class Snippet:
    path: str
    line: int
    lang: str
    text: str

    @property
    def key(self) -> Tuple[str, str]:
        return (self.path, self.text.splitlines()[0].strip() if self.text.strip() else "")

    def __str__(self) -> str:
        return f"{self.path}:{self.line}"


FENCE = re.compile(r"^(?P<indent> *)```(?P<lang>\S*)\n(?P<body>.*?)^(?P=indent)```$", re.S | re.M)


def snippets() -> List[Snippet]:
    found = []
    for path in FILES:
        text = path.read_text(encoding="utf-8")
        for match in FENCE.finditer(text):
            line = text.count("\n", 0, match.start()) + 1
            body = textwrap.dedent(match["body"])
            found.append(Snippet(str(path.relative_to(ROOT)), line, match["lang"], body))
    return found


ALL = snippets()
"""Every fenced block of README.md and docs/, in file order."""


def substitutions(tmp: Path, port: int) -> Dict[str, str]:
    """SUBSTITUTIONS: what the docs write for a reader, and the value a test uses instead."""
    first = Simulator(projects=1, seed=1).projects[0]  # the first project of `simulator` (seed 1)
    return {
        "8080": str(port),                          # a fixed port: a free one
        "<id printed above>": first.project_id,     # the id `simulator` prints
        "/data/": f"{tmp}/data/",                   # a data folder: one in the temp folder
    }


def substitute(text: str, folder: Path, port: int) -> str:
    for placeholder, value in substitutions(folder, port).items():
        text = text.replace(placeholder, value)
    return text


def bash(script: str, folder: Path, env: Dict[str, str]) -> subprocess.CompletedProcess:
    """Run a script in its own process group; whatever it left in the background is ended after."""
    out, err = folder / "snippet.stdout", folder / "snippet.stderr"
    with open(out, "w") as stdout, open(err, "w") as stderr:
        proc = subprocess.Popen(["bash", "-e", "-o", "pipefail", "-c", script], cwd=folder, env=env,
                                stdout=stdout, stderr=stderr, text=True, start_new_session=True)
    try:
        proc.wait(timeout=180)
    finally:
        try:
            os.killpg(proc.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
    return subprocess.CompletedProcess(proc.args, proc.returncode, out.read_text(), err.read_text())


def wait_after_background(script: str, port: int) -> str:
    """A line that starts a server in the background is followed by a wait until its port answers."""
    wait = (f"for i in $(seq 100); do (exec 3<>/dev/tcp/127.0.0.1/{port}) 2>/dev/null && break; "
            "sleep 0.1; done")
    lines = []
    for line in script.splitlines():
        lines.append(line)
        if re.search(r"&\s*(#.*)?$", line) and "&&" not in line.split("#")[0][-3:]:
            lines.append(wait)
    return "\n".join(lines) + "\n"
