"""The name a module was started by, for its usage line: `python -m workspace_images.simulator`."""

from __future__ import annotations

import os
import sys


def module_command(module: str) -> str:
    """How `python -m` starts `module`, with the interpreter named as it was started (argparse
    names a module so itself from Python 3.14 on; before, it says `__main__.py` or `cli.py`).

    Args:
        module: The module's import name, `__spec__.name`; a package's `__main__` names the package.
    """
    return f"{os.path.basename(sys.executable) or 'python'} -m {module.removesuffix('.__main__')}"
