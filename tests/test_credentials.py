"""Credentials as dlt specs, one per mode, and project discovery paged by dlt's JSONLinkPaginator, over
real HTTP to the simulator."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Dict, List, Tuple

import dlt
import pytest

from workspace_images.accounts import connect_accounts, resolve_accounts
from workspace_images.credentials import AkSkCredentials, PasswordCredentials, TokenCredentials, credentials_from
from workspace_images.settings import MAX_DISCOVERY_PAGES
from workspace_images.simulator import Simulator
from workspace_images.source import workspace_images
from tests.helpers import TOKEN, cli, one_line, query

ENV = "SOURCES__WORKSPACE_IMAGES__CREDENTIALS__"


def keys(sim: Simulator, mode: str) -> Dict[str, str]:
    account = sim.iam.account()
    return {
        "token": {"token": TOKEN},
        "password": {"user_name": account.user, "password": account.password, "domain_name": account.domain},
        "aksk": {"access_key": account.access_key, "secret_key": account.secret_key},
    }[mode]


def iam_requests(sim: Simulator) -> List[Tuple[str, str]]:
    return [(r.method, r.path) for r in sim.requests if r.path.startswith("/v3")]


IAM_REQUESTS = {
    # the spec that resolved shows in what IAM is asked: the list a token reads, the tokens a password
    # gets (one for the account's list, one for its project), the list an AK/SK pair signs for
    "token": [("GET", "/v3/auth/projects")],
    "password": [("POST", "/v3/auth/tokens"), ("GET", "/v3/auth/projects"), ("POST", "/v3/auth/tokens")],
    "aksk": [("GET", "/v3/projects")],
}


@pytest.mark.parametrize("place", ["environment", "secrets.toml"])
@pytest.mark.parametrize("mode", ["token", "password", "aksk"])
def test_each_mode_resolves_from_the_environment_and_from_secrets_toml(
    sim: Simulator, tmp_path: Path, mode: str, place: str
) -> None:
    sim.add_project("cn-north-4", images=3)
    given = keys(sim, mode)
    env: Dict[str, str] = {}
    if place == "environment":
        env = {ENV + name.upper(): value for name, value in given.items()}
    else:
        (tmp_path / ".dlt").mkdir()
        (tmp_path / ".dlt" / "secrets.toml").write_text(
            "[sources.workspace_images.credentials]\n" + "".join(f'{k} = "{v}"\n' for k, v in given.items()))
    proc = cli(["run", "--endpoint", sim.url, "--iam-endpoint", sim.url, "--db", "x.duckdb", "--discover",
                "--no-models"], tmp_path, token=None, extra_env=env)
    assert proc.returncode == 0, proc.stderr
    assert iam_requests(sim) == IAM_REQUESTS[mode]
    assert query(tmp_path / "x.duckdb", "select count(*) from workspace_images.images") == [(3,)]


def test_keys_of_two_modes_in_two_places_conflict(sim: Simulator, tmp_path: Path) -> None:
    """dlt's union would take the token and drop the AK/SK pair unsaid: the check says both are set."""
    (tmp_path / ".dlt").mkdir()
    (tmp_path / ".dlt" / "secrets.toml").write_text(
        '[sources.workspace_images.credentials]\naccess_key = "AK-in-secrets"\nsecret_key = "SK-in-secrets"\n')
    proc = cli(["run", "--endpoint", sim.url, "--project", "cn-north-4:abc", "--db", "x.duckdb"], tmp_path)
    assert proc.returncode == 2
    assert one_line(proc.stderr) == (
        "workspace-images: error: conflicting credentials for sources.workspace_images: token, access_key, "
        "secret_key are set; set only one of token, user_name/password/domain_name, access_key/secret_key")
    assert "SK-in-secrets" not in proc.stdout + proc.stderr and TOKEN not in proc.stdout + proc.stderr
    assert sim.requests == []


def test_a_mode_split_between_places_names_the_key_it_lacks(sim: Simulator, tmp_path: Path) -> None:
    (tmp_path / ".dlt").mkdir()
    (tmp_path / ".dlt" / "secrets.toml").write_text('[sources.workspace_images.credentials]\npassword = "pw-9"\n')
    proc = cli(["run", "--endpoint", sim.url, "--project", "cn-north-4:abc", "--db", "x.duckdb"], tmp_path,
               token=None, extra_env={ENV + "USER_NAME": "someone"})
    assert proc.returncode == 2
    assert one_line(proc.stderr) == (
        "workspace-images: error: incomplete credentials for sources.workspace_images: password mode also needs "
        "SOURCES__WORKSPACE_IMAGES__CREDENTIALS__DOMAIN_NAME")
    assert "pw-9" not in proc.stdout + proc.stderr


@pytest.mark.parametrize("given, spec, shown", [
    ({"token": "t-1"}, TokenCredentials, "TokenCredentials(token=***)"),
    ({"user_name": "u", "password": "p-1", "domain_name": "d"}, PasswordCredentials,
     "PasswordCredentials(user_name='u', password=***, domain_name='d')"),
    ({"access_key": "ak-1", "secret_key": "sk-1", "security_token": ""}, AkSkCredentials,
     "AkSkCredentials(access_key=***, secret_key=***)"),
    ({"access_key": "ak-1", "secret_key": "sk-1", "security_token": "st-1"}, AkSkCredentials,
     "AkSkCredentials(access_key=***, secret_key=***, security_token=***)"),
])
def test_the_keys_set_resolve_as_one_spec_shown_without_its_secrets(given: Dict[str, str], spec: type, shown: str) -> None:
    credentials = credentials_from(given)
    assert (type(credentials), credentials.is_resolved(), repr(credentials), str(credentials)) == (
        spec, True, shown, shown)


def test_a_spec_passed_to_the_source_is_its_mode(sim: Simulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Credentials passed in code are taken as they are: the token in the environment is not asked about."""
    project = sim.add_project("cn-north-4", images=4)
    monkeypatch.setenv(ENV + "TOKEN", TOKEN)
    account = sim.iam.account()
    given = AkSkCredentials.from_init_value({"access_key": account.access_key, "secret_key": account.secret_key})
    db = tmp_path / "mine.duckdb"
    pipeline = dlt.pipeline("mine", destination=dlt.destinations.duckdb(str(db)), pipelines_dir=str(tmp_path / "dlt"))
    pipeline.run(workspace_images(credentials=given, endpoint=sim.url, iam_endpoint=sim.url, discover_projects=True,
                                  as_of=sim.as_of()))
    assert iam_requests(sim) == [("GET", "/v3/projects")]
    assert query(db, "select distinct project_id from mine_dataset.images") == [(project.project_id,)]


# -- discovery pages ------------------------------------------------------------------------


def test_a_next_link_back_to_a_page_already_read_ends_discovery(sim: Simulator, tmp_path: Path) -> None:
    sim.add_project("cn-north-4", images=3)
    sim.iam.set_listing_paging(per_page=5, next_url=f"{sim.url}/v3/auth/projects")
    proc = cli(["run", "--endpoint", sim.url, "--iam-endpoint", sim.url, "--db", "x.duckdb", "--discover"], tmp_path)
    assert proc.returncode == 3
    assert one_line(proc.stderr) == (
        f"workspace-images: run failed: account default: IAM's project list links its next page back to a page already "
        f"read ({sim.url}/v3/auth/projects); not followed, the list would never end")
    assert iam_requests(sim) == [("GET", "/v3/auth/projects")]


def test_discovery_reads_at_most_max_discovery_pages_and_says_so(
    sim: Simulator, caplog: pytest.LogCaptureFixture
) -> None:
    for _ in range(MAX_DISCOVERY_PAGES + 1):
        sim.add_project("cn-north-4", images=0)
    sim.iam.set_listing_paging(per_page=1)  # one entry a page, the MOS project's first
    [account] = resolve_accounts(None, credentials_from({"token": TOKEN}), True, None, None)
    with caplog.at_level(logging.WARNING, logger="workspace_images"):
        connect_accounts([account], sim.url)
    assert (len(account.projects), iam_requests(sim)) == (
        MAX_DISCOVERY_PAGES - 1, [("GET", "/v3/auth/projects")] * MAX_DISCOVERY_PAGES)
    assert [r.getMessage() for r in caplog.records] == [
        f"account default: IAM's project list has more than {MAX_DISCOVERY_PAGES} pages: the pages after them "
        "are not read"]


@pytest.mark.parametrize("link", [5, {"href": "/v3/auth/projects?page=2"}, "", ["/v3/auth/projects?page=2"]])
def test_a_next_link_that_is_no_address_ends_the_list(sim: Simulator, link: object) -> None:
    first, second = (sim.add_project("cn-north-4", images=0) for _ in range(2))
    sim.iam.set_listing_paging(per_page=2, next_url=link)  # type: ignore[arg-type]  # a hostile answer's link
    # the first page holds the MOS project and `first`
    [account] = resolve_accounts(None, credentials_from({"token": TOKEN}), True, None, None)
    connect_accounts([account], sim.url)
    assert ([p.project_id for p in account.projects], iam_requests(sim)) == (
        [first.project_id], [("GET", "/v3/auth/projects")])
