"""Run the simulator: ``python -m workspace_images.simulator --help``."""

import sys

from workspace_images.pipelines.program import module_command

from .cli import main

sys.exit(main(prog=module_command(__spec__.name)))
