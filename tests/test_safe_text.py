"""Text from outside where it is shown: control characters escaped, echoed secrets redacted, CSV cells neutralised."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Dict, List

import duckdb
import pyarrow as pa
import pytest

from workspace_images.pipelines.reporting.exports import neutralise_cells
from workspace_images.simulator import Simulator
from workspace_images.safe_text import REDACTED, add_secrets, safe_text
from tests.helpers import TOKEN, cli, load, run_args

FORGED = "bad request\r\nfailed: cn-north-4:fake: HTTP 200 all good\x1b[2K\u202egnp.exe"
FORGED_SHOWN = "bad request\\r\\nfailed: cn-north-4:fake: HTTP 200 all good\\x1b[2K\\u202egnp.exe"


def test_safe_text_escapes_what_moves_or_hides_text_and_is_idempotent() -> None:
    text = "a\rb\nc\td\x00e\x1bf\x7fg\x85h\x9bi\u202aj\u202ek\u2066l\u2069m\u200fn\u2028o\ud800p\\n 测试 é"
    shown = "a\\rb\\nc\\td\\x00e\\x1bf\\x7fg\\x85h\\x9bi\\u202aj\\u202ek\\u2066l\\u2069m\\u200fn\\u2028o\\ud800p\\n 测试 é"
    assert safe_text(text) == shown
    assert safe_text(shown) == shown
    add_secrets("s3cr\"et-value", None, "  ")
    assert safe_text('{"password": "s3cr\\"et-value"} s3cr"et-value\n') == \
        f'{{"password": "{REDACTED}"}} {REDACTED}\\n'


def test_control_characters_from_the_api_stay_on_one_line(sim: Simulator, tmp_path: Path) -> None:
    ok, bad = sim.add_project("cn-north-4", images=5), sim.add_project("cn-north-4", images=5)
    sim.fail_project(bad.project_id, "status", status=400, error_code="WKS.0001\x1b[31m\u202e", error_msg=FORGED)
    proc = cli(run_args(sim, "x.duckdb", None, "--json", "--log-file", "run.log"), tmp_path)
    assert proc.returncode == 1, proc.stderr
    failure = f"HTTP 400 WKS.0001\\x1b[31m\\u202e: {FORGED_SHOWN}"
    assert f"failed: cn-north-4:{bad.project_id}: {failure}" in proc.stderr.splitlines(), proc.stderr
    log = (tmp_path / "run.log").read_text(encoding="utf-8")
    assert [line for line in log.splitlines() if line.endswith(f"WARNING project cn-north-4:{bad.project_id} "
                                                               f"failed: {failure}")], log
    for shown in (proc.stderr, proc.stdout, log):
        assert not any(ch in shown for ch in "\r\x1b\u202e"), shown
        assert not [line for line in shown.splitlines() if line.startswith("failed: cn-north-4:fake")]
    assert all(line[:4].isdigit() for line in log.splitlines()), log  # each line a log record of its own
    [summary] = proc.stdout.splitlines()
    assert json.loads(summary)["projects_failed"] == [{
        "project": f"cn-north-4:{bad.project_id}", "http_status": 400, "error_code": "WKS.0001\x1b[31m\u202e", "error_msg": FORGED_SHOWN,
    }]
    with duckdb.connect(str(tmp_path / "x.duckdb"), read_only=True) as con:
        stored = con.execute("select error_code, error_msg from workspace_images.project_runs "
                             "where project_id = ?", [bad.project_id]).fetchall()
    assert stored == [("WKS.0001\x1b[31m\u202e", FORGED_SHOWN)]  # error_code as sent, error_msg escaped
    assert ok.project_id not in proc.stderr


def test_report_shows_odd_values_escaped(sim: Simulator, tmp_path: Path) -> None:
    db = tmp_path / "images.duckdb"
    ok, bad = sim.add_project("cn-north-4", images=3), sim.add_project("cn-north-4", images=3)
    sim.publish(ok.project_id, {"os_type": "Lin\x1b[2Jux\r", "os_version": "v\u202e1.0", "name": "img\x1b]0;x\x07"})
    sim.fail_project(bad.project_id, "status", status=400, error_code="WKS\x1b[5m", error_msg="no\rway")
    load(db, sim)
    proc = cli(["report", "--db", str(db), "--html", "page.html", "--pipelines-dir", str(tmp_path / "pipelines")],
               tmp_path, token=None)
    assert proc.returncode == 0, proc.stderr
    page = (tmp_path / "page.html").read_text(encoding="utf-8")
    for shown in (proc.stdout, page):
        assert not any(ch in shown for ch in "\r\x1b\x07\u202e"), shown
        assert "Lin\\x1b[2Jux\\r" in shown and "v\\u202e1.0" in shown
        assert "HTTP 400 WKS\\x1b[5m: no\\rway" in shown
    assert "img\\x1b]0;x\\x07" in proc.stdout


def _credentials(sim: Simulator, mode: str) -> Dict[str, str]:
    account = sim.iam.account()
    prefix = "SOURCES__WORKSPACE_IMAGES__CREDENTIALS__"
    if mode == "token":
        return {prefix + "TOKEN": TOKEN}
    if mode == "password":
        return {prefix + "USER_NAME": account.user, prefix + "PASSWORD": account.password,
                prefix + "DOMAIN_NAME": account.domain}
    ak, sk, security_token = sim.iam.issue_temporary_credentials()
    return {prefix + "ACCESS_KEY": ak, prefix + "SECRET_KEY": sk, prefix + "SECURITY_TOKEN": security_token}


@pytest.mark.parametrize("mode", ["token", "password", "temporary"])
def test_echoed_secrets_are_redacted_everywhere(sim: Simulator, tmp_path: Path, mode: str) -> None:
    ok, echo, echo_iam = (sim.add_project("cn-north-4", images=5) for _ in range(3))
    sim.fail_project(echo.project_id, "echo")  # error_msg: the request, X-Auth-Token or Authorization included
    if mode == "password":
        sim.fail_project(echo_iam.project_id, "echo_iam")  # IAM's message: the token request, password included
    env = {"SOURCES__WORKSPACE_IMAGES__IAM_ENDPOINT": sim.url, **_credentials(sim, mode)}
    run = cli(run_args(sim, "x.duckdb", None, "--log-file", "run.log"), tmp_path, token=None, extra_env=env)
    assert run.returncode == 1, run.stderr
    page = cli(["report", "--db", "x.duckdb", "--html", "page.html"], tmp_path, token=None)
    assert page.returncode == 0, page.stderr
    secrets: List[str] = [v for k, v in env.items() if k.rsplit("__", 1)[1] in
                          ("TOKEN", "PASSWORD", "ACCESS_KEY", "SECRET_KEY", "SECURITY_TOKEN")]
    secrets += sim.iam.issued_tokens()
    assert len(secrets) >= {"token": 1, "password": 3, "temporary": 3}[mode]
    with duckdb.connect(str(tmp_path / "x.duckdb"), read_only=True) as con:
        rows = con.execute("select project_id, status, error_msg from workspace_images.project_runs").fetchall()
        every_value = json.dumps(con.execute("select * from workspace_images.project_runs").fetchall(), default=str)
    errors = {project_id: msg for project_id, status, msg in rows if status == "failed"}
    echoed = "Authorization: SDK-HMAC-SHA256 Access=******" if mode == "temporary" else "X-Auth-Token: ******"
    assert f"\\r\\n{echoed}" in errors[echo.project_id], errors
    if mode == "password":
        assert f'"password": "{REDACTED}"' in errors[echo_iam.project_id], errors
    if mode == "temporary":
        assert f"X-Security-Token: {REDACTED}" in errors[echo.project_id], errors
    shown = {"stdout": run.stdout + page.stdout, "stderr": run.stderr + page.stderr,
             "log": (tmp_path / "run.log").read_text(encoding="utf-8"), "project_runs": every_value,
             "page": (tmp_path / "page.html").read_text(encoding="utf-8")}
    assert echoed in shown["stderr"] and echoed in shown["log"] and echoed in shown["page"]
    for secret in secrets:
        for where, text in shown.items():
            assert secret not in text, (mode, where)
        for path in (p for p in tmp_path.rglob("*") if p.is_file()):
            assert secret.encode() not in path.read_bytes(), (mode, path)


def test_csv_cells_that_a_spreadsheet_would_run_get_a_quote(sim: Simulator, tmp_path: Path) -> None:
    db = tmp_path / "images.duckdb"
    project = sim.add_project("cn-north-4", images=0)
    names = ['=HYPERLINK("http://x","y")', "+1", "-1", "@SUM(A1)", "\tTab", "\rCR", "a=b", "'quoted"]
    for name in names:
        sim.publish(project.project_id, {"name": name, "os_type": "Linux", "min_ram": -512})
    load(db, sim)
    proc = cli(["report", "--db", str(db), "--csv", "out", "--parquet", "out",
                "--pipelines-dir", str(tmp_path / "pipelines")], tmp_path, token=None)
    assert proc.returncode == 0, proc.stderr
    with open(tmp_path / "out" / "image_inventory.csv", newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    assert sorted(r["name"] for r in rows) == sorted(["'" + n for n in names[:6]] + names[6:])
    assert {r["min_ram"] for r in rows} == {"-512"}  # a negative number is a number, not text
    with duckdb.connect() as con:  # Parquet keeps the values as they are
        parquet = con.execute("select name from read_parquet(?)",
                              [str(tmp_path / "out" / "image_inventory.parquet")]).fetchall()
    assert sorted(r[0] for r in parquet) == sorted(names)


def test_only_text_cells_are_neutralised() -> None:
    batch = pa.record_batch(
        [pa.array([-5, 3, None]), pa.array(["-5", "x", None]), pa.array([-1.5, 2.0, None])],
        names=["n", "s", "f"],
    )
    out = neutralise_cells(batch)
    assert out.schema == batch.schema
    assert out.to_pydict() == {"n": [-5, 3, None], "s": ["'-5", "x", None], "f": [-1.5, 2.0, None]}
