"""`workspace-images init`: templates that dlt reads as written, that a run works from once filled in,
and that never overwrite anything."""

from __future__ import annotations

import os
import re
import stat
import tomllib
from pathlib import Path
from typing import Dict, List

import pytest
from dlt.common.configuration.specs import RuntimeConfiguration

from workspace_images.pipelines.checks import DEFAULT_LOCK_TIMEOUT
from workspace_images.pipelines.init import CONFIG_TEMPLATE, SECRETS_TEMPLATE
from workspace_images.simulator import (
    DEFAULT_ACCESS_KEY,
    DEFAULT_DOMAIN,
    DEFAULT_PASSWORD,
    DEFAULT_SECRET_KEY,
    DEFAULT_USER,
    Simulator,
)
from workspace_images.settings import DEFAULT_MAX_ANSWER_BYTES, DEFAULT_MAX_NEW_FIELDS, DEFAULT_PROJECT_TIMEOUT
from tests.helpers import TOKEN, cli, query

NEXT_STEPS = [
    "next:",
    "  1. in config.toml set projects (or discover_projects = true)",
    "  2. in secrets.toml uncomment one credential mode and fill it in",
]


def mode_of(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_init_writes_the_two_templates_with_every_default_and_secrets_0600(tmp_path: Path) -> None:
    previous = os.umask(0)  # the secrets file's mode is its own, not the umask's
    try:
        proc = cli(["init"], tmp_path, token=None)
    finally:
        os.umask(previous)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines() == [
        "wrote .dlt/config.toml", "wrote .dlt/secrets.toml (mode 0600)", *NEXT_STEPS, "  3. workspace-images run",
    ]
    config, secrets = tmp_path / ".dlt" / "config.toml", tmp_path / ".dlt" / "secrets.toml"
    assert mode_of(secrets) == 0o600
    assert mode_of(config) == 0o666
    assert config.read_text(encoding="utf-8") == CONFIG_TEMPLATE
    assert secrets.read_text(encoding="utf-8") == SECRETS_TEMPLATE
    assert tomllib.loads(CONFIG_TEMPLATE) == {
        "sources": {"workspace_images": {
            "discover_projects": False, "regions": [], "destination": "duckdb",
            "project_timeout": DEFAULT_PROJECT_TIMEOUT, "max_answer_bytes": DEFAULT_MAX_ANSWER_BYTES,
            "max_new_fields": DEFAULT_MAX_NEW_FIELDS, "lock_timeout": DEFAULT_LOCK_TIMEOUT,
        }},
        "runtime": {"request_timeout": RuntimeConfiguration.request_timeout},
    }
    assert tomllib.loads(SECRETS_TEMPLATE) == {"sources": {"workspace_images": {"credentials": {}}}}


def test_every_commented_secret_is_valid_toml_once_uncommented() -> None:
    uncommented = re.sub(r"^# (\[|\w+ = )", r"\1", SECRETS_TEMPLATE, flags=re.MULTILINE)
    assert tomllib.loads(uncommented) == {
        "sources": {"workspace_images": {"credentials": {
            "access_key": "", "secret_key": "", "security_token": "", "user_name": "", "password": "",
            "domain_name": "", "token": "",
        }}},
        "destination": {"postgres": {"credentials": "postgresql://USER:PASSWORD@HOST:5432/DATABASE"}},
    }


def uncomment(text: str, values: Dict[str, str]) -> str:
    """What a user does to a template: replace each commented `# key = ...` line by `key = value`."""
    for key, value in values.items():
        text, found = re.subn(rf"^# {key} = [^#\n]*", f"{key} = {value} ", text, count=1, flags=re.MULTILINE)
        assert found == 1, key
    return text


CREDENTIALS = {
    "token": {"token": f'"{TOKEN}"'},
    "aksk": {"access_key": f'"{DEFAULT_ACCESS_KEY}"', "secret_key": f'"{DEFAULT_SECRET_KEY}"'},
    "password": {"user_name": f'"{DEFAULT_USER}"', "password": f'"{DEFAULT_PASSWORD}"',
                 "domain_name": f'"{DEFAULT_DOMAIN}"'},
}


@pytest.mark.parametrize("mode", sorted(CREDENTIALS))
def test_a_run_works_from_the_templates_once_projects_and_a_credential_are_set(
    sim: Simulator, tmp_path: Path, mode: str
) -> None:
    a, b = sim.add_project("cn-north-4", images=12), sim.add_project("cn-east-3", images=5)
    site = tmp_path / "site"
    site.mkdir()
    proc = cli(["init", "site"], tmp_path, token=None)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines() == [
        "wrote site/.dlt/config.toml", "wrote site/.dlt/secrets.toml (mode 0600)", *NEXT_STEPS,
        "  3. cd site && workspace-images run",
    ]
    config, secrets = site / ".dlt" / "config.toml", site / ".dlt" / "secrets.toml"
    projects = f'["cn-north-4:{a.project_id}", "cn-east-3:{b.project_id}"]'
    config.write_text(uncomment(config.read_text(encoding="utf-8"), {"projects": projects}), encoding="utf-8")
    secrets.write_text(uncomment(secrets.read_text(encoding="utf-8"), CREDENTIALS[mode]), encoding="utf-8")

    run = cli(["run", "--endpoint", sim.url, "--iam-endpoint", sim.url, "--db", str(tmp_path / "x.duckdb"),
               "--no-models"], site, token=None, extra_env={"HOME": str(tmp_path)})
    assert run.returncode == 0, run.stderr
    assert "2/2 projects ok, 17 images, 17 new versions" in run.stdout
    assert query(tmp_path / "x.duckdb", "select count(*) from workspace_images.images") == [(17,)]
    assert mode_of(secrets) == 0o600


@pytest.mark.parametrize("existing", [["config.toml"], ["secrets.toml"], ["config.toml", "secrets.toml"]])
def test_init_never_overwrites_and_then_writes_nothing(tmp_path: Path, existing: List[str]) -> None:
    (tmp_path / ".dlt").mkdir()
    for name in existing:
        (tmp_path / ".dlt" / name).write_text("# mine\n", encoding="utf-8")
    proc = cli(["init"], tmp_path, token=None)
    assert proc.returncode == 2
    named = " and ".join(f".dlt/{name}" for name in existing)
    it = "it" if len(existing) == 1 else "them"
    assert proc.stderr.strip() == (
        f"workspace-images: error: {named} already {'exists' if len(existing) == 1 else 'exist'}: init never "
        f"overwrites (edit {it}, or move {it} away and run init again)")
    assert proc.stdout == ""
    assert sorted(p.name for p in (tmp_path / ".dlt").iterdir()) == existing
    assert all((tmp_path / ".dlt" / name).read_text(encoding="utf-8") == "# mine\n" for name in existing)


def test_init_into_a_folder_that_is_missing_or_a_file_exits_2(tmp_path: Path) -> None:
    (tmp_path / "a-file").write_text("", encoding="utf-8")
    (tmp_path / "odd").mkdir()
    (tmp_path / "odd" / ".dlt").write_text("", encoding="utf-8")
    for folder, message in [
        ("missing", "missing does not exist: make it first, or name another folder"),
        ("a-file", "a-file is not a folder"),
        ("odd", "odd/.dlt is not a folder"),
    ]:
        proc = cli(["init", folder], tmp_path, token=None)
        assert (proc.returncode, proc.stdout, proc.stderr) == (2, "", f"workspace-images: error: {message}\n")
    assert sorted(p.name for p in tmp_path.rglob("*")) == [".dlt", "a-file", "odd"]


@pytest.mark.skipif(not Path("/sys/kernel").is_dir(), reason="needs Linux's /sys, where no one may make a folder")
def test_init_into_a_folder_it_cannot_write_exits_2(tmp_path: Path) -> None:
    """/sys refuses even root, whom file modes do not stop."""
    proc = cli(["init", "/sys"], tmp_path, token=None)
    assert proc.returncode == 2
    assert re.fullmatch(r"workspace-images: error: cannot write /sys/\.dlt: (Operation not permitted|Permission denied)\n",
                        proc.stderr), proc.stderr
    assert not Path("/sys/.dlt").exists()
