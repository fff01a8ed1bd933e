"""Credential modes, token renewal, discovery and several accounts, over real HTTP to the simulator."""

from __future__ import annotations

from pathlib import Path
from typing import Dict

import pytest

from workspace_images.pipelines.errors import UsageError
from workspace_images.pipelines.runner import run
from workspace_images.simulator import Simulator
from workspace_images.accounts import resolve_accounts
from workspace_images.config import ConfigError
from tests.helpers import cli, current_ids, project_run, query, targets


def ids(images: list) -> list:
    return sorted(i["id"] for i in images)


def password(sim: Simulator, domain: str | None = None) -> Dict[str, str]:
    account = sim.iam.account(domain)
    return {"user_name": account.user, "password": account.password, "domain_name": account.domain}


def aksk(sim: Simulator, domain: str | None = None) -> Dict[str, str]:
    account = sim.iam.account(domain)
    return {"access_key": account.access_key, "secret_key": account.secret_key}


def go(db: Path, sim: Simulator, credentials: Dict[str, str], **kwargs) -> "object":
    kwargs.setdefault("projects", targets(sim))
    return run(db, endpoint=sim.url, iam_endpoint=sim.url, credentials=credentials,
               as_of=sim.as_of(), pipelines_dir=db.parent / "pipelines", **kwargs)


@pytest.fixture
def accounts_sim() -> Simulator:
    with Simulator(projects=3, images=130, seed=4, token="fixed-token-not-used-here") as simulator:
        yield simulator


def assert_all_loaded(db: Path, sim: Simulator, domain: str | None = None) -> None:
    for project in sim.projects_of(domain):
        assert current_ids(db, project.project_id) == ids(sim.images(project.project_id))


def test_password_mode_loads_every_project_with_one_token_each(accounts_sim: Simulator, db: Path) -> None:
    result = go(db, accounts_sim, password(accounts_sim))
    assert result.exit_code == 0, result.failed
    assert_all_loaded(db, accounts_sim)
    assert accounts_sim.iam_calls("/v3/auth/tokens", status=201) == 3


def test_password_mode_renews_tokens_that_expire_mid_run(accounts_sim: Simulator, db: Path) -> None:
    big = accounts_sim.add_project("cn-north-4", images=450)
    accounts_sim.on_request(big.project_id, lambda s, pid, n: s.iam.expire_tokens() if n == 2 else None)
    result = go(db, accounts_sim, password(accounts_sim), projects=targets(accounts_sim), concurrency=1)
    assert result.exit_code == 0, result.failed
    assert_all_loaded(db, accounts_sim)
    row = project_run(db, result.run_id, big.project_id)
    assert row["status"] == "ok" and row["images"] == 450
    expired = [r for r in accounts_sim.requests if r.project_id == big.project_id and r.status == 401]
    assert len(expired) == 1  # refused once as expired, then a new token
    # one token per project (4, the check's reused by the first), one more for `big` after the expiry;
    # `big` is read last (concurrency 1), so no other project meets the expired tokens
    assert accounts_sim.iam_calls("/v3/auth/tokens", status=201) == 5


def test_short_lived_tokens_are_renewed_before_they_expire(accounts_sim: Simulator, db: Path) -> None:
    """A whole run on the real clock: no page meets an expired token. When each token is asked for,
    to the minute, is checked on a fake clock (test_auth.py); here the count can only be bounded."""
    accounts_sim.iam.token_ttl = 2  # requests come every 0.6 s: the 5th, at 2.4 s, would meet an expired token
    big = accounts_sim.add_project("cn-north-4", images=450)
    accounts_sim.latency_ms = 600
    result = go(db, accounts_sim, password(accounts_sim), projects=[f"cn-north-4:{big.project_id}"])
    assert result.exit_code == 0, result.failed
    assert [r.status for r in accounts_sim.requests if r.project_id == big.project_id] == [200] * 5
    # a token is renewed a quarter of its 2 s lifetime before it ends, so every 1.5 s: the five requests
    # span 2.4 s, starting however long after the first token dlt's set-up took, so they see 2 or 3 tokens
    assert accounts_sim.iam_calls("/v3/auth/tokens", status=201) in (2, 3)


def test_a_wrong_password_makes_one_iam_call_and_exits_2(accounts_sim: Simulator, db: Path) -> None:
    wrong = {**password(accounts_sim), "password": "not-the-password"}
    with pytest.raises(UsageError, match=r"IAM rejected user 'sim-user' of account 'sim-domain' \(HTTP 401"):
        go(db, accounts_sim, wrong)
    assert accounts_sim.iam_calls("/v3") == 1
    assert not db.exists() and not (db.parent / "pipelines").exists()


def test_aksk_mode_loads_every_project(accounts_sim: Simulator, db: Path) -> None:
    result = go(db, accounts_sim, aksk(accounts_sim))
    assert result.exit_code == 0, result.failed
    assert_all_loaded(db, accounts_sim)
    assert accounts_sim.iam_calls("/v3") == 0


def test_temporary_aksk_with_security_token(accounts_sim: Simulator, db: Path) -> None:
    ak, sk, security_token = accounts_sim.iam.issue_temporary_credentials()
    result = go(db, accounts_sim, {"access_key": ak, "secret_key": sk, "security_token": security_token})
    assert result.exit_code == 0, result.failed
    assert_all_loaded(db, accounts_sim)


def test_a_bad_secret_key_fails_the_projects_with_the_gateway_code(accounts_sim: Simulator, db: Path) -> None:
    bad = {**aksk(accounts_sim), "secret_key": "wrong-secret-key-0000000000000000000000"}
    result = go(db, accounts_sim, bad)
    assert result.exit_code == 1
    assert len(result.failed) == 3
    assert {(p["http_status"], p["error_code"]) for p in result.failed} == {(401, "APIG.0301")}
    sent = [r for r in accounts_sim.requests if r.path.startswith("/v2/")]
    assert len(sent) == 1  # one refusal, not one per project: the gateway locks keys after 5
    assert sum("not sent" in p["error_msg"] for p in result.failed) == 2


def test_conflicting_or_incomplete_credentials_exit_2(accounts_sim: Simulator, db: Path) -> None:
    with pytest.raises(UsageError, match="conflicting credentials .*: token, access_key, secret_key are set"):
        go(db, accounts_sim, {"token": "t", **aksk(accounts_sim)})
    with pytest.raises(UsageError, match="incomplete credentials .*: aksk mode also needs .*__SECRET_KEY"):
        go(db, accounts_sim, {"access_key": "AK"})
    with pytest.raises(UsageError, match="password mode also needs .*__DOMAIN_NAME"):
        go(db, accounts_sim, {"user_name": "u", "password": "p"})
    assert accounts_sim.requests == [] and not db.exists()


@pytest.fixture
def discovery_sim() -> Simulator:
    with Simulator(projects=0, seed=8, token="fixed-token-for-discovery") as sim:
        sim.add_project("cn-north-4", images=20)
        sim.add_project("cn-north-4", images=15, name="cn-north-4_finance")
        sim.add_project("ap-southeast-1", images=12)
        sim.add_project("cn-east-3", images=9, enabled=False)
        yield sim


@pytest.mark.parametrize("mode", ["token", "password", "aksk"])
def test_discover_finds_region_projects_and_sub_projects(discovery_sim: Simulator, db: Path, mode: str) -> None:
    sim = discovery_sim
    creds = {"token": sim.iam.fixed_token, "password": password(sim), "aksk": aksk(sim)}[mode]
    creds = creds if isinstance(creds, dict) else {"token": creds}
    result = go(db, sim, creds, projects=None, discover=True)
    assert result.exit_code == 0, result.failed
    found = {(p["project_name"], p["region"], p["discovered"]) for p in result.projects}
    assert found == {("cn-north-4", "cn-north-4", True), ("cn-north-4_finance", "cn-north-4", True),
                     ("ap-southeast-1", "ap-southeast-1", True)}
    enabled = [p for p in sim.projects if sim.iam.project(p.project_id).enabled]
    for project in enabled:
        assert current_ids(db, project.project_id) == ids(sim.images(project.project_id))


def test_discover_honours_regions(discovery_sim: Simulator, db: Path) -> None:
    result = go(db, discovery_sim, {"token": discovery_sim.iam.fixed_token}, projects=None, discover=True,
                regions=["cn-north-4"])
    assert sorted(p["project_name"] for p in result.projects) == ["cn-north-4", "cn-north-4_finance"]


def test_several_accounts_in_one_run(db: Path) -> None:
    with Simulator(projects=2, images=40, seed=9, token="fixed-token-acc") as sim:
        sim.iam.add_account("acme")
        sim.add_project("cn-east-3", images=25, account="acme")
        sim.add_project("ap-southeast-1", images=30, account="acme")
        result = run(
            db, endpoint=sim.url, iam_endpoint=sim.url, as_of=sim.as_of(), pipelines_dir=db.parent / "p",
            projects=targets(sim), credentials=password(sim),
            accounts={"acme": {"discover_projects": True, "credentials": aksk(sim, "acme")}},
        )
        assert result.exit_code == 0, result.failed
        assert_all_loaded(db, sim)
        assert_all_loaded(db, sim, "acme")
        by_account = dict(query(db, "select account, count(distinct project_id) from workspace_images.images "
                                    "where _dlt_valid_to is null group by 1"))
        assert by_account == {"default": 2, "acme": 2}
        runs = dict(query(db, "select account, count(*) from workspace_images.project_runs group by 1"))
        assert runs == {"default": 2, "acme": 2}
        assert query(db, "select distinct account from analytics.image_inventory order by 1") == [("acme",), ("default",)]


def test_accounts_from_environment_variables(tmp_path: Path) -> None:
    with Simulator(projects=1, images=10, seed=12, token="fixed-token-env") as sim:
        sim.iam.add_account("acme")
        acme_project = sim.add_project("cn-east-3", images=7, account="acme")
        acme = sim.iam.account("acme")
        env = {
            "SOURCES__WORKSPACE_IMAGES__ENDPOINT": sim.url,
            "SOURCES__WORKSPACE_IMAGES__IAM_ENDPOINT": sim.url,
            "SOURCES__WORKSPACE_IMAGES__PROJECTS": f'["{targets(sim)[0]}"]',
            "SOURCES__WORKSPACE_IMAGES__ACCOUNTS": f'{{"acme": {{"projects": ["cn-east-3:{acme_project.project_id}"]}}}}',
            "SOURCES__WORKSPACE_IMAGES__ACCOUNTS__ACME__CREDENTIALS__ACCESS_KEY": acme.access_key,
            "SOURCES__WORKSPACE_IMAGES__ACCOUNTS__ACME__CREDENTIALS__SECRET_KEY": acme.secret_key,
        }
        proc = cli(["run", "--db", "x.duckdb"], tmp_path, token="fixed-token-env", extra_env=env)
        assert proc.returncode == 0, proc.stderr
        assert "2/2 projects ok, 17 images" in proc.stdout


def test_accounts_split_between_config_and_secrets_files(tmp_path: Path) -> None:
    """The README's layout: an account's projects in config.toml, its credentials in secrets.toml."""
    with Simulator(projects=0, images=10, seed=14, token="fixed-token-files") as sim:
        sim.iam.add_account("acme")
        project = sim.add_project("cn-east-3", images=9, account="acme")
        acme = sim.iam.account("acme")
        (tmp_path / ".dlt").mkdir()
        (tmp_path / ".dlt" / "config.toml").write_text(
            f'[sources.workspace_images]\nendpoint = "{sim.url}"\niam_endpoint = "{sim.url}"\n\n'
            f'[sources.workspace_images.accounts.acme]\nprojects = ["cn-east-3:{project.project_id}"]\n')
        (tmp_path / ".dlt" / "secrets.toml").write_text(
            f'[sources.workspace_images.accounts.acme.credentials]\naccess_key = "{acme.access_key}"\n'
            f'secret_key = "{acme.secret_key}"\n')
        proc = cli(["run", "--db", "x.duckdb", "--no-models"], tmp_path, token=None)
        assert proc.returncode == 0, proc.stderr
        assert "1/1 projects ok, 9 images" in proc.stdout


@pytest.mark.parametrize("value, discover", [("false", False), ("true", True), ("False", False)])
def test_an_accounts_switch_in_an_environment_variable_reads_as_dlt_reads_it(
    monkeypatch: pytest.MonkeyPatch, value: str, discover: bool
) -> None:
    monkeypatch.setenv("SOURCES__WORKSPACE_IMAGES__ACCOUNTS__ACME__DISCOVER_PROJECTS", value)
    monkeypatch.setenv("SOURCES__WORKSPACE_IMAGES__ACCOUNTS__ACME__PROJECTS", '["cn-east-3:abc"]')
    monkeypatch.setenv("SOURCES__WORKSPACE_IMAGES__ACCOUNTS__ACME__CREDENTIALS__TOKEN", "acme-token")
    [acme] = resolve_accounts(None, None, False, None, {"acme": {}})
    assert (acme.discover, [str(p) for p in acme.projects], acme.mode) == (discover, ["cn-east-3:abc"], "token")
    monkeypatch.setenv("SOURCES__WORKSPACE_IMAGES__ACCOUNTS__ACME__DISCOVER_PROJECTS", "maybe")
    with pytest.raises(ConfigError, match="^account acme: discover_projects must be true or false$"):
        resolve_accounts(None, None, False, None, {"acme": {}})


@pytest.mark.parametrize("mode", ["password", "aksk", "temporary"])
def test_secrets_never_leak_in_any_mode(tmp_path: Path, mode: str) -> None:
    with Simulator(projects=2, images=120, seed=13, token="fixed-token-leak") as sim:
        account = sim.iam.account()
        broken = sim.add_project("cn-east-3", images=5)
        sim.fail_project(broken.project_id, "status", status=500, error_code="WKS.0500", error_msg="boom")
        env = {"SOURCES__WORKSPACE_IMAGES__IAM_ENDPOINT": sim.url}
        if mode == "password":
            env.update({"SOURCES__WORKSPACE_IMAGES__CREDENTIALS__USER_NAME": account.user,
                        "SOURCES__WORKSPACE_IMAGES__CREDENTIALS__PASSWORD": account.password,
                        "SOURCES__WORKSPACE_IMAGES__CREDENTIALS__DOMAIN_NAME": account.domain})
            secrets = [account.password]
        elif mode == "aksk":
            env.update({"SOURCES__WORKSPACE_IMAGES__CREDENTIALS__ACCESS_KEY": account.access_key,
                        "SOURCES__WORKSPACE_IMAGES__CREDENTIALS__SECRET_KEY": account.secret_key})
            secrets = [account.secret_key]
        else:
            ak, sk, security_token = sim.iam.issue_temporary_credentials()
            env.update({"SOURCES__WORKSPACE_IMAGES__CREDENTIALS__ACCESS_KEY": ak,
                        "SOURCES__WORKSPACE_IMAGES__CREDENTIALS__SECRET_KEY": sk,
                        "SOURCES__WORKSPACE_IMAGES__CREDENTIALS__SECURITY_TOKEN": security_token})
            secrets = [sk, security_token]
        args = ["-v", "run", "--endpoint", sim.url, "--db", "x.duckdb", "--discover"]
        proc = cli(args, tmp_path, token=None, extra_env=env)
        assert proc.returncode == 1, proc.stderr
        assert "Making GET request" in proc.stderr
        secrets += sim.iam.issued_tokens()  # every token IAM issued during the run
        assert len(secrets) > (3 if mode == "password" else 0)
        written = [p for p in tmp_path.rglob("*") if p.is_file()]
        assert len(written) > 5
        for secret in secrets:
            assert secret not in proc.stdout and secret not in proc.stderr, mode
            for path in written:
                assert secret.encode() not in path.read_bytes(), (mode, path)
