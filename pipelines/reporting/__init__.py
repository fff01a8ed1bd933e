"""`workspace-images report`: the models of schema `analytics`, for people to read.

Everything here reads them (the header the run log of finished loads,
`analytics.stg_project_runs`) through a read-only session in UTC of `warehouse.connect`:
a DuckDB file, or any destination the models build on, with the same output from each.

- `queries`: what the report reads;
- `terminal`: the text report;
- `formatting`: numbers and moments as both the text report and the page write them;
- `exports`: CSV and Parquet files;
- `page` (with `report.css`) and `charts`: the HTML page and its SVG charts;
- `screenshot`: a PNG of the page, Playwright driving the machine's Chromium.
"""

from .exports import export
from .page import HTML_CHANGES, render_html, write_html
from .screenshot import ScreenshotFailed, find_chromium, screenshot
from .terminal import format_table, terminal_report

__all__ = [
    "HTML_CHANGES",
    "ScreenshotFailed",
    "export",
    "find_chromium",
    "format_table",
    "render_html",
    "screenshot",
    "terminal_report",
    "write_html",
]
