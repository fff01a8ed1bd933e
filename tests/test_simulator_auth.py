"""IAM tokens, AK/SK signatures and project listings of the simulator, over real HTTP on 127.0.0.1.

Requests are signed with the official SDK's signer, and the official Workspace
SDK client reads images from the simulator, which proves the simulator speaks
the real protocol.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import ipaddress
import re
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests
from huaweicloudsdkcore.auth.credentials import BasicCredentials
from huaweicloudsdkcore.exceptions.exceptions import ClientRequestException
from huaweicloudsdkcore.region.region import Region
from huaweicloudsdkcore.sdk_request import SdkRequest
from huaweicloudsdkcore.signer.signer import Signer
from huaweicloudsdkworkspace.v2 import ListImagesRequest, WorkspaceClient

from workspace_images.simulator import (
    DEFAULT_ACCESS_KEY,
    DEFAULT_DOMAIN,
    DEFAULT_PASSWORD,
    DEFAULT_SECRET_KEY,
    DEFAULT_USER,
    MOS_PROJECT,
    SimAccount,
    SimProject,
    Simulator,
    signing,
)
from workspace_images.simulator.gateway import INCORRECT

FIXED = "fixed-token-for-auth-tests"
OTHER = "other-domain"
HEX32 = re.compile(r"^[0-9a-f]{32}$")
ISO_MICROS = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$")
SDK_DATE = "%Y%m%dT%H%M%SZ"
ROOT = Path(__file__).resolve().parents[1]
NOON = 1_800_000_000.0
"""A server time for tests that set the clock: 2027-01-15 08:00:00 UTC."""
TOKEN_MUST_BE_UPDATED = "The token must be updated."
NEEDS_AUTHENTICATION = "The request you have made requires authentication."


@pytest.fixture
def sim():
    """Default account: cn-north-4, its sub-project cn-north-4_finance, cn-east-3, a disabled
    ap-southeast-1; account ``other-domain``: its own cn-north-4."""
    with Simulator(projects=0, seed=3, token=FIXED) as simulator:
        simulator.add_project("cn-north-4", images=12)
        simulator.add_project("cn-north-4", images=5, name="cn-north-4_finance")
        simulator.add_project("cn-east-3", images=7)
        simulator.add_project("ap-southeast-1", images=3, enabled=False)
        simulator.iam.add_account(OTHER, user="other-user", password="other-password")
        simulator.add_project("cn-north-4", images=4, account=OTHER)
        yield simulator


@pytest.fixture(autouse=True)
def loopback_only(monkeypatch):
    """Fail any connection or name lookup that would leave 127.0.0.1."""
    real_connect = socket.socket.connect
    real_getaddrinfo = socket.getaddrinfo

    def connect(self, address):
        if self.family in (socket.AF_INET, socket.AF_INET6):
            assert ipaddress.ip_address(address[0]).is_loopback, f"connection to {address} leaves the host"
        return real_connect(self, address)

    def getaddrinfo(host, *args, **kwargs):
        assert host in ("127.0.0.1", "localhost", "::1", None), f"name lookup of {host} leaves the host"
        return real_getaddrinfo(host, *args, **kwargs)

    monkeypatch.setattr(socket.socket, "connect", connect)
    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)


def project(sim: Simulator, name: str, domain: str | None = None) -> SimProject:
    return next(p for p in sim.projects_of(domain) if p.name == name)


def images_url(sim: Simulator, project_id: str) -> str:
    return f"{sim.url}/v2/{project_id}/images"


def password_body(scope: dict, user: str = DEFAULT_USER, password: str = DEFAULT_PASSWORD,
                  domain: str = DEFAULT_DOMAIN) -> dict:
    return {"auth": {
        "identity": {"methods": ["password"],
                     "password": {"user": {"name": user, "password": password, "domain": {"name": domain}}}},
        "scope": scope,
    }}


def post_token(sim: Simulator, scope: dict, **kwargs) -> requests.Response:
    return requests.post(f"{sim.url}/v3/auth/tokens", json=password_body(scope, **kwargs))


def token_for(sim: Simulator, project_id: str, **kwargs) -> str:
    response = post_token(sim, {"project": {"id": project_id}}, **kwargs)
    assert response.status_code == 201, response.text
    return response.headers["X-Subject-Token"]


def with_token(sim: Simulator, project_id: str, token: str, **params) -> requests.Response:
    return requests.get(images_url(sim, project_id), headers={"X-Auth-Token": token}, params=params)


def keystone_error(response: requests.Response, status: int) -> str:
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert error["code"] == status
    assert error["title"] == {400: "Bad Request", 401: "Unauthorized", 404: "Not Found",
                              405: "Method Not Allowed"}[status]
    return error["message"]


def gateway_error(response: requests.Response, status: int, code: str) -> str:
    assert response.status_code == status, response.text
    body = response.json()
    assert body["error_code"] == code
    assert body["request_id"] == response.headers["X-Request-Id"]
    return body["error_msg"]


def token_mismatch(project_id: str) -> str:
    return f"{INCORRECT}: the project of the token does not match project {project_id} in the URL"


def request_mismatch(declared: str, project_id: str) -> str:
    return f"{INCORRECT}: the project of the request ({declared}) does not match project {project_id} in the URL"


def not_the_keys(project_id: str) -> str:
    return f"{INCORRECT}: project {project_id} in the URL does not belong to the account of the access key"


def disabled_project(project_id: str) -> str:
    return f"The IAM user is not authorized to access the API: project {project_id} is disabled."


def invalid_input(field: str, problem: str) -> str:
    return f"Invalid input for field '{field}': {problem}"


def signature_fail(request: SdkRequest, headers: dict[str, str] | None = None, query: str = "",
                   body: bytes = b"") -> str:
    """The gateway's message for a bad signature: what it signed, on one line.

    That is the headers ``request`` signed, with the values of the ``headers``
    sent (by default its own; a missing one is empty), the canonical ``query``
    and the hash of the ``body`` received.
    """
    signed = sorted(name.lower() for name in request.header_params if name != "Authorization")
    sent = {name.lower(): value for name, value in (headers or request.header_params).items()}
    canonical = [request.method, request.resource_path.rstrip("/") + "/", query,
                 *(f"{name}:{sent.get(name, '')}" for name in signed), "", ";".join(signed),
                 hashlib.sha256(body).hexdigest()]
    return f"{INCORRECT}: verify aksk signature fail, canonicalRequest:" + "|".join(canonical)


def signed(
    sim: Simulator,
    path: str,
    query: list[tuple[str, object]] | None = None,
    *,
    ak: str | None = None,
    sk: str | None = None,
    project_id: str | None = None,
    headers: dict[str, str] | None = None,
    date: dt.datetime | None = None,
) -> SdkRequest:
    """Sign a GET with the official SDK's signer, the way its clients build requests."""
    header_params = {"Content-Type": "application/json", "User-Agent": "huaweicloud-usdk-python/3.0"}
    if project_id is not None:
        header_params["X-Project-Id"] = project_id
    if date is not None:
        header_params["X-Sdk-Date"] = date.strftime(SDK_DATE)
    header_params.update(headers or {})
    request = SdkRequest(method="GET", schema="http", host=sim.url.removeprefix("http://"), resource_path=path,
                         query_params=list(query or []), header_params=header_params, body="")
    return Signer(BasicCredentials(ak or sim.access_key, sk or sim.secret_key)).sign(request)


def send(request: SdkRequest, **kwargs) -> requests.Response:
    return requests.get(request.url, headers=request.header_params, **kwargs)


def signed_images(sim: Simulator, project_id: str, query=None, **kwargs) -> requests.Response:
    return send(signed(sim, f"/v2/{project_id}/images", query, project_id=project_id, **kwargs))


# accounts


def test_default_account_and_credentials(sim):
    account = sim.iam.account()
    assert sim.iam.accounts[0] == account and sim.iam.accounts[1] == sim.iam.account(OTHER)
    assert (account.domain, account.user, account.password) == ("sim-domain", "sim-user", "sim-password")
    assert (account.access_key, account.secret_key) == (DEFAULT_ACCESS_KEY, DEFAULT_SECRET_KEY)
    assert (sim.domain, sim.user, sim.password, sim.access_key, sim.secret_key) == (
        account.domain, account.user, account.password, account.access_key, account.secret_key)
    assert len(account.access_key) == 22 and len(account.secret_key) == 40
    assert all(HEX32.match(value) for value in (account.domain_id, account.user_id, account.mos_project_id))
    other = sim.iam.account(OTHER)
    assert other.access_key == "SIMACCESSKEY0000000002" and len(other.secret_key) == 40
    assert other.secret_key != account.secret_key and other.domain_id != account.domain_id
    assert account.password not in repr(account) and account.secret_key not in repr(account)
    assert [p.name for p in sim.projects_of()] == ["cn-north-4", "cn-north-4_finance", "cn-east-3",
                                                    "ap-southeast-1"]
    assert [p.name for p in sim.projects_of(OTHER)] == ["cn-north-4"]
    assert len(sim.projects) == 5
    assert sim.iam.account_of(project(sim, "cn-north-4", OTHER).project_id) == other
    assert sim.iam.account_of(account.mos_project_id) == account
    assert not sim.iam.project(project(sim, "ap-southeast-1").project_id).enabled


def test_custom_default_account_and_validation():
    sim = Simulator(projects=2, domain="acme", user="alice", password="pw", access_key="AK1", secret_key="SK1")
    account = sim.iam.account()
    assert (account.domain, account.user, account.password, account.access_key, account.secret_key) == (
        "acme", "alice", "pw", "AK1", "SK1")
    assert sim.projects_of("acme") == sim.projects
    with pytest.raises(ValueError, match="already exists"):
        sim.iam.add_account("acme")
    with pytest.raises(ValueError, match="already in use"):
        sim.iam.add_account("b", access_key="AK1")
    with pytest.raises(KeyError):
        sim.add_project("cn-north-4", images=1, account="nobody")
    with pytest.raises(ValueError, match="cn-north-4"):
        sim.add_project("cn-north-4", images=1, name="cn-east-3_x")
    with pytest.raises(ValueError):
        sim.add_project("cn-north-4", images=1, name=MOS_PROJECT)
    with pytest.raises(ValueError, match="already has a project named"):
        sim.add_project("cn-north-4", images=1, name="cn-north-4")
    assert isinstance(sim.iam.add_account("b"), SimAccount)
    assert sim.add_project("cn-north-4", images=1, account="b").name == "cn-north-4"
    assert sim.add_project("cn-north-4", images=1).name == "cn-north-4_team1"


# tokens


def test_token_scoped_by_project_id(sim):
    target = project(sim, "cn-north-4")
    account = sim.iam.account()
    before = time.time()
    response = post_token(sim, {"project": {"id": target.project_id}})
    assert response.status_code == 201
    assert response.headers["Content-Type"] == "application/json;charset=UTF-8"
    token = response.headers["X-Subject-Token"]
    assert token.startswith("MII") and len(token) > 1000
    body = response.json()["token"]
    assert body["methods"] == ["password"]
    domain = {"id": account.domain_id, "name": "sim-domain"}
    assert body["project"] == {"id": target.project_id, "name": "cn-north-4", "domain": domain}
    assert body["user"]["id"] == account.user_id and body["user"]["name"] == "sim-user"
    assert body["user"]["domain"] == domain
    assert body["roles"] and "domain" not in body
    assert ISO_MICROS.match(body["expires_at"]) and ISO_MICROS.match(body["issued_at"])
    issued = dt.datetime.strptime(body["issued_at"], "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=dt.timezone.utc)
    expires = dt.datetime.strptime(body["expires_at"], "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=dt.timezone.utc)
    assert expires - issued == dt.timedelta(hours=24)
    assert abs(issued.timestamp() - before) < 5
    ok = with_token(sim, target.project_id, token, limit=100)
    assert ok.status_code == 200 and ok.json()["images"] == sim.images(target.project_id)


def test_token_scoped_by_project_name_needs_the_domain(sim):
    finance = project(sim, "cn-north-4_finance")
    response = post_token(sim, {"project": {"name": "cn-north-4_finance", "domain": {"name": DEFAULT_DOMAIN}}})
    assert response.status_code == 201
    assert response.json()["token"]["project"]["id"] == finance.project_id
    token = response.headers["X-Subject-Token"]
    assert with_token(sim, finance.project_id, token).json()["total_count"] == 5
    by_domain_id = post_token(sim, {"project": {"name": "cn-north-4", "domain": {"id": sim.iam.account().domain_id}}})
    assert by_domain_id.json()["token"]["project"]["id"] == project(sim, "cn-north-4").project_id
    message = keystone_error(post_token(sim, {"project": {"name": "cn-north-4_finance"}}), 400)
    assert message == invalid_input("auth.scope.project", "a project given by name needs its 'domain'")


def test_domain_scoped_token(sim):
    response = post_token(sim, {"domain": {"name": DEFAULT_DOMAIN}})
    assert response.status_code == 201
    body = response.json()["token"]
    assert body["domain"] == {"id": sim.iam.account().domain_id, "name": DEFAULT_DOMAIN}
    assert "project" not in body
    token = response.headers["X-Subject-Token"]
    target = project(sim, "cn-north-4").project_id
    message = gateway_error(with_token(sim, target, token), 401, "APIG.0301")
    assert message == f"{token_mismatch(target)} (the token is scoped to domain {DEFAULT_DOMAIN})"
    listing = requests.get(f"{sim.url}/v3/auth/projects", headers={"X-Auth-Token": token})
    assert listing.status_code == 200
    assert keystone_error(post_token(sim, {"domain": {"name": OTHER}}), 401) == (
        f"User {sim.iam.account().user_id} has no access to domain {OTHER}.")
    assert keystone_error(post_token(sim, {"domain": {"name": "no-such-domain"}}), 404) == (
        "Could not find domain: no-such-domain.")


def test_nocatalog_and_several_tokens_at_once(sim):
    target = project(sim, "cn-east-3").project_id
    with_catalog = post_token(sim, {"project": {"id": target}})
    assert "catalog" in with_catalog.json()["token"]
    plain = requests.post(f"{sim.url}/v3/auth/tokens?nocatalog=true", json=password_body({"project": {"id": target}}))
    assert "catalog" not in plain.json()["token"]
    tokens = {with_catalog.headers["X-Subject-Token"], plain.headers["X-Subject-Token"], token_for(sim, target)}
    assert len(tokens) == 3
    assert all(with_token(sim, target, token).status_code == 200 for token in tokens)


def test_token_of_another_project(sim):
    token = token_for(sim, project(sim, "cn-north-4").project_id)
    same_region = project(sim, "cn-north-4_finance").project_id
    assert gateway_error(with_token(sim, same_region, token), 401, "APIG.0301") == token_mismatch(same_region)
    other_region = project(sim, "cn-east-3").project_id
    assert gateway_error(with_token(sim, other_region, token), 401, "APIG.0307") == TOKEN_MUST_BE_UPDATED
    other_account = project(sim, "cn-north-4", OTHER).project_id
    assert gateway_error(with_token(sim, other_account, token), 401, "APIG.0301") == token_mismatch(other_account)
    assert gateway_error(with_token(sim, "0" * 32, token), 401, "APIG.0301") == token_mismatch("0" * 32)


def test_other_account_tokens_and_fixed_token_scope(sim):
    theirs = project(sim, "cn-north-4", OTHER).project_id
    token = token_for(sim, theirs, user="other-user", password="other-password", domain=OTHER)
    assert with_token(sim, theirs, token).json()["total_count"] == 4
    assert gateway_error(with_token(sim, theirs, FIXED), 401, "APIG.0301") == token_mismatch(theirs)
    mos = sim.iam.account().mos_project_id
    assert gateway_error(with_token(sim, mos, FIXED), 401, "APIG.0301") == token_mismatch(mos)
    assert with_token(sim, project(sim, "cn-east-3").project_id, FIXED).status_code == 200


def test_garbled_and_missing_tokens(sim):
    target = project(sim, "cn-north-4").project_id
    token = token_for(sim, target)
    for bad in ("MIIgarbage", token[:-4] + "AAAA", "x"):
        assert gateway_error(with_token(sim, target, bad), 401, "APIG.0301") == (
            "Incorrect IAM authentication information: decrypt token fail")
    message = gateway_error(requests.get(images_url(sim, target)), 401, "APIG.0301")
    assert message == f"{INCORRECT}: the X-Auth-Token header is missing"


def test_token_expires_after_its_ttl(sim):
    target = project(sim, "cn-north-4").project_id
    now = [NOON]
    sim.iam.clock = lambda: now[0]
    sim.iam.token_ttl = 1
    response = post_token(sim, {"project": {"id": target}})
    body = response.json()["token"]
    assert (body["issued_at"], body["expires_at"]) == ("2027-01-15T08:00:00.000000Z", "2027-01-15T08:00:01.000000Z")
    token = response.headers["X-Subject-Token"]
    assert with_token(sim, target, token).status_code == 200
    now[0] = NOON + 0.999
    assert with_token(sim, target, token).status_code == 200
    now[0] = NOON + 1
    assert gateway_error(with_token(sim, target, token), 401, "APIG.0307") == TOKEN_MUST_BE_UPDATED
    expired = requests.get(f"{sim.url}/v3/auth/projects", headers={"X-Auth-Token": token})
    assert keystone_error(expired, 401) == NEEDS_AUTHENTICATION
    with Simulator(projects=1, images=1, token_ttl=3600) as short:
        body = post_token(short, {"project": {"id": short.projects[0].project_id}}).json()["token"]
        assert (dt.datetime.fromisoformat(body["expires_at"][:-1]) -
                dt.datetime.fromisoformat(body["issued_at"][:-1])) == dt.timedelta(hours=1)


def test_expire_tokens_keeps_the_fixed_token(sim):
    target = project(sim, "cn-north-4").project_id
    old = token_for(sim, target)
    granted = sim.iam.grant_token(project_id=target)
    assert with_token(sim, target, granted).status_code == 200
    sim.iam.expire_tokens()
    for token in (old, granted):
        assert gateway_error(with_token(sim, target, token), 401, "APIG.0307") == "The token must be updated."
    assert with_token(sim, target, FIXED).status_code == 200
    assert with_token(sim, target, token_for(sim, target)).status_code == 200


def test_clock_moves_tokens_past_expiry(sim):
    target = project(sim, "cn-north-4").project_id
    token = token_for(sim, target)
    sim.iam.clock = lambda: time.time() + 86400 + 1
    assert gateway_error(with_token(sim, target, token), 401, "APIG.0307") == TOKEN_MUST_BE_UPDATED


def test_wrong_password_then_lockout_after_five(sim):
    scope = {"project": {"id": project(sim, "cn-north-4").project_id}}
    for _ in range(5):
        message = keystone_error(post_token(sim, scope, password="wrong"), 401)
        assert message == "The username or password is wrong."
    assert keystone_error(post_token(sim, scope), 401) == "The account is locked."
    assert keystone_error(post_token(sim, scope, password="wrong"), 401) == "The account is locked."
    other = post_token(sim, {"project": {"id": project(sim, "cn-north-4", OTHER).project_id}},
                       user="other-user", password="other-password", domain=OTHER)
    assert other.status_code == 201
    sim.iam.unlock_users()
    assert post_token(sim, scope).status_code == 201


def test_lock_times_out_after_15_minutes(sim):
    scope = {"project": {"id": project(sim, "cn-north-4").project_id}}
    for _ in range(5):
        post_token(sim, scope, password="wrong")
    sim.iam.clock = lambda: time.time() + 14 * 60
    assert keystone_error(post_token(sim, scope), 401) == "The account is locked."
    sim.iam.clock = lambda: time.time() + 15 * 60 + 1
    assert post_token(sim, scope).status_code == 201


def test_a_good_password_resets_the_count(sim):
    scope = {"domain": {"name": DEFAULT_DOMAIN}}
    for _ in range(3):
        for _ in range(4):
            assert post_token(sim, scope, password="wrong").status_code == 401
        assert post_token(sim, scope).status_code == 201


@pytest.mark.parametrize(("user", "domain"), [("nobody", DEFAULT_DOMAIN), (DEFAULT_USER, "no-such-domain"),
                                              ("other-user", DEFAULT_DOMAIN)])
def test_unknown_user_or_domain_is_a_wrong_password(sim, user, domain):
    response = post_token(sim, {"domain": {"name": domain}}, user=user, domain=domain)
    assert keystone_error(response, 401) == "The username or password is wrong."


def test_scope_problems(sim):
    assert keystone_error(post_token(sim, {"project": {"id": "0" * 32}}), 404) == (
        f"Could not find project: {'0' * 32}.")
    missing = post_token(sim, {"project": {"name": "cn-south-1", "domain": {"name": DEFAULT_DOMAIN}}})
    assert keystone_error(missing, 404) == "Could not find project: cn-south-1."
    theirs = project(sim, "cn-north-4", OTHER).project_id
    assert keystone_error(post_token(sim, {"project": {"id": theirs}}), 401) == (
        f"User {sim.iam.account().user_id} has no access to project {theirs}.")
    disabled = project(sim, "ap-southeast-1").project_id
    assert keystone_error(post_token(sim, {"project": {"id": disabled}}), 401) == (
        f"The project {disabled} is disabled.")
    mos = post_token(sim, {"project": {"name": MOS_PROJECT, "domain": {"name": DEFAULT_DOMAIN}}})
    assert mos.status_code == 201
    cn_north = project(sim, "cn-north-4").project_id
    assert gateway_error(with_token(sim, cn_north, mos.headers["X-Subject-Token"]), 401, "APIG.0307") == (
        TOKEN_MUST_BE_UPDATED)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"not json", "The request body is not valid JSON."),
        (b"[]", invalid_input("auth", "'auth' is a required object")),
        (b"{}", invalid_input("auth", "'auth' is a required object")),
        (b'{"auth": {}}', invalid_input("auth.identity", "'identity' is a required object")),
        (b'{"auth": {"identity": {"methods": [], "password": {}}, "scope": {"domain": {"name": "d"}}}}',
         invalid_input("auth.identity.methods", "a non-empty list of strings is required")),
        ((b'{"auth": {"identity": {"methods": ["password"], "password": {"user": {"name": "u", '
          b'"domain": {"name": "d"}}}}, "scope": {"domain": {"name": "d"}}}}'),
         invalid_input("auth.identity.password.user", "'password' is a required property")),
        ((b'{"auth": {"identity": {"methods": ["password"], "password": {"user": {"name": "u", "password": "p"}}}, '
          b'"scope": {"domain": {"name": "d"}}}}'),
         invalid_input("auth.identity.password.user", "'domain' is a required object")),
        ((b'{"auth": {"identity": {"methods": ["password"], "password": {"user": {"name": "u", "password": "p", '
          b'"domain": {"name": "d"}}}}}}'),
         invalid_input("auth", "'scope' is a required object")),
        ((b'{"auth": {"identity": {"methods": ["password"], "password": {"user": {"name": "u", "password": "p", '
          b'"domain": {"name": "d"}}}}, "scope": {"project": {}}}}'),
         invalid_input("auth.scope.project", "'id' or 'name' is required")),
        ((b'{"auth": {"identity": {"methods": ["password"], "password": {"user": {"name": "u", "password": "p", '
          b'"domain": {"name": "d"}}}}, "scope": {"system": {"all": true}}}}'),
         invalid_input("auth.scope", "'project' or 'domain' is required")),
    ],
)
def test_malformed_token_requests_are_400(sim, body, message):
    response = requests.post(f"{sim.url}/v3/auth/tokens", data=body, headers={"Content-Type": "application/json"})
    assert keystone_error(response, 400) == message
    assert "X-Subject-Token" not in response.headers


def test_unsupported_method_and_wrong_http_method(sim):
    body = password_body({"domain": {"name": DEFAULT_DOMAIN}})
    body["auth"]["identity"]["methods"] = ["token"]
    assert keystone_error(requests.post(f"{sim.url}/v3/auth/tokens", json=body), 401) == (
        "Attempted to authenticate with an unsupported method.")
    response = requests.get(f"{sim.url}/v3/auth/tokens")
    assert keystone_error(response, 405) == "The method GET is not allowed for /v3/auth/tokens."
    assert response.headers["Allow"] == "POST"
    assert requests.post(f"{sim.url}/v3/projects").status_code == 405


def test_a_chunked_token_request_is_read(sim):
    def chunks():
        yield b'{"auth": {"identity": {"methods": ["password"], "password": {"user": {"name": "sim-user", '
        yield b'"password": "sim-password", "domain": {"name": "sim-domain"}}}}, '
        yield b'"scope": {"domain": {"name": "sim-domain"}}}}'

    response = requests.post(f"{sim.url}/v3/auth/tokens", data=chunks(), headers={"Content-Type": "application/json"})
    assert response.status_code == 201


# project listings


def expected_projects(sim: Simulator, domain: str | None = None) -> list[dict]:
    account = sim.iam.account(domain)
    rows = [(account.mos_project_id, MOS_PROJECT, True)]
    rows += [(p.project_id, p.name, sim.iam.project(p.project_id).enabled) for p in sim.projects_of(domain)]
    ids = {name: pid for pid, name, _ in rows}
    entries = []
    for pid, name, enabled in rows:
        region = name.split("_")[0]
        parent = ids[region] if name != region and region in ids else account.domain_id
        entries.append({"id": pid, "name": name, "domain_id": account.domain_id, "parent_id": parent,
                        "enabled": enabled, "is_domain": False, "description": "",
                        "links": {"self": f"{sim.url}/v3/projects/{pid}"}})
    return entries


def test_auth_projects_with_any_token_of_the_account(sim):
    expected = expected_projects(sim)
    names = {p["name"] for p in expected}
    assert {"MOS", "cn-north-4_finance", "ap-southeast-1"} <= names
    assert next(p for p in expected if p["name"] == "ap-southeast-1")["enabled"] is False
    finance = next(p for p in expected if p["name"] == "cn-north-4_finance")
    assert finance["parent_id"] == project(sim, "cn-north-4").project_id
    tokens = [FIXED, token_for(sim, project(sim, "cn-east-3").project_id),
              post_token(sim, {"domain": {"name": DEFAULT_DOMAIN}}).headers["X-Subject-Token"]]
    for token in tokens:
        response = requests.get(f"{sim.url}/v3/auth/projects", headers={"X-Auth-Token": token})
        assert response.status_code == 200
        assert response.headers["X-IAM-Trace-Id"] == response.headers["X-Request-Id"]  # IAM names its request id so
        assert response.json() == {"projects": expected, "links": {
            "self": f"{sim.url}/v3/auth/projects", "previous": None, "next": None}}
    theirs = project(sim, "cn-north-4", OTHER).project_id
    other_token = token_for(sim, theirs, user="other-user", password="other-password", domain=OTHER)
    listing = requests.get(f"{sim.url}/v3/auth/projects", headers={"X-Auth-Token": other_token}).json()
    assert listing["projects"] == expected_projects(sim, OTHER)
    assert [p["name"] for p in listing["projects"]] == ["MOS", "cn-north-4"]


def test_auth_projects_refuses_bad_tokens_and_signatures(sim):
    for headers in ({}, {"X-Auth-Token": "MIInope"}):
        response = requests.get(f"{sim.url}/v3/auth/projects", headers=headers)
        assert keystone_error(response, 401) == NEEDS_AUTHENTICATION
    assert keystone_error(send(signed(sim, "/v3/auth/projects")), 401) == NEEDS_AUTHENTICATION


def test_v3_projects_signed_with_aksk(sim):
    response = send(signed(sim, "/v3/projects"))
    assert response.status_code == 200, response.text
    assert response.json()["projects"] == expected_projects(sim)
    assert response.json()["links"]["self"] == f"{sim.url}/v3/projects"
    by_name = send(signed(sim, "/v3/projects", [("name", "cn-north-4")])).json()
    assert [p["id"] for p in by_name["projects"]] == [project(sim, "cn-north-4").project_id]
    assert by_name["links"]["self"] == f"{sim.url}/v3/projects?name=cn-north-4"
    disabled = send(signed(sim, "/v3/projects", [("enabled", "false")])).json()["projects"]
    assert [p["name"] for p in disabled] == ["ap-southeast-1"]
    enabled = send(signed(sim, "/v3/projects", [("enabled", "true")])).json()["projects"]
    assert "ap-southeast-1" not in {p["name"] for p in enabled} and len(enabled) == 4
    mos = send(signed(sim, "/v3/projects", [("name", "MOS")])).json()["projects"]
    assert [p["id"] for p in mos] == [sim.iam.account().mos_project_id]
    paged = send(signed(sim, "/v3/projects", [("page", 2), ("per_page", 2)])).json()["projects"]
    assert paged == expected_projects(sim)[2:4]
    other = sim.iam.account(OTHER)
    theirs = send(signed(sim, "/v3/projects", ak=other.access_key, sk=other.secret_key)).json()["projects"]
    assert theirs == expected_projects(sim, OTHER)
    with_token = requests.get(f"{sim.url}/v3/projects", headers={"X-Auth-Token": FIXED}, params={"name": "cn-east-3"})
    assert [p["name"] for p in with_token.json()["projects"]] == ["cn-east-3"]


def test_v3_projects_refusals(sim):
    assert keystone_error(requests.get(f"{sim.url}/v3/projects"), 401) == NEEDS_AUTHENTICATION
    bad = signed(sim, "/v3/projects", sk="wrong" * 8)
    assert gateway_error(send(bad), 401, "APIGW.0301") == signature_fail(bad)
    assert keystone_error(send(signed(sim, "/v3/projects", [("per_page", "x")])), 400) == (
        invalid_input("per_page", "'x' is not a positive integer"))


# Workspace with AK/SK


def test_signed_request_is_accepted(sim):
    target = project(sim, "cn-north-4").project_id
    response = signed_images(sim, target, [("limit", 5), ("offset", 2)])
    assert response.status_code == 200, response.text
    assert response.json() == {"total_count": 12, "images": sim.images(target)[2:7]}
    assert sim.requests[-1].project_id == target and sim.requests[-1].query == {"limit": "5", "offset": "2"}


def test_signed_request_with_a_body_and_unsigned_payload(sim):
    target = project(sim, "cn-north-4").project_id
    request = signed(sim, f"/v2/{target}/images", project_id=target)
    request.body = b""
    body_request = SdkRequest(method="GET", schema="http", host=sim.url.removeprefix("http://"),
                              resource_path=f"/v2/{target}/images", query_params=[],
                              header_params={"Content-Type": "application/json", "X-Project-Id": target},
                              body='{"x": 1}')
    Signer(BasicCredentials(sim.access_key, sim.secret_key)).sign(body_request)
    assert requests.get(body_request.url, headers=body_request.header_params, data=body_request.body).status_code == 200
    tampered = requests.get(body_request.url, headers=body_request.header_params, data=b'{"x": 2}')
    assert gateway_error(tampered, 401, "APIG.0301") == signature_fail(body_request, body=b'{"x": 2}')
    unsigned = SdkRequest(method="GET", schema="http", host=sim.url.removeprefix("http://"),
                          resource_path=f"/v2/{target}/images", query_params=[],
                          header_params={"Content-Type": "application/octet-stream", "X-Project-Id": target},
                          body=b"raw bytes")
    Signer(BasicCredentials(sim.access_key, sim.secret_key)).sign(unsigned)
    assert unsigned.header_params["X-Sdk-Content-Sha256"] == "UNSIGNED-PAYLOAD"
    assert requests.get(unsigned.url, headers=unsigned.header_params, data=b"other bytes").status_code == 200


def test_bad_secret_key_and_unknown_access_key(sim):
    target = project(sim, "cn-north-4").project_id
    bad = signed(sim, f"/v2/{target}/images", project_id=target, sk="x" * 40)
    assert gateway_error(send(bad), 401, "APIG.0301") == signature_fail(bad)
    message = gateway_error(signed_images(sim, target, ak="NOSUCHKEY00000000000"), 401, "APIG.0301")
    assert message == "Incorrect IAM authentication information: Get secretKey failed,ak:******,err:ak not exist"
    assert "NOSUCHKEY" not in message


def test_tampered_requests_fail(sim):
    target = project(sim, "cn-north-4").project_id
    request = signed(sim, f"/v2/{target}/images", [("limit", 5)], project_id=target)
    assert send(request).status_code == 200
    other_query = requests.get(request.url.replace("limit=5", "limit=6"), headers=request.header_params)
    assert gateway_error(other_query, 401, "APIG.0301") == signature_fail(request, query="limit=6")
    headers = dict(request.header_params, **{"User-Agent": "something-else"})
    assert gateway_error(requests.get(request.url, headers=headers), 401, "APIG.0301") == (
        signature_fail(request, headers, query="limit=5"))
    dropped = {k: v for k, v in request.header_params.items() if k != "X-Project-Id"}
    assert gateway_error(requests.get(request.url, headers=dropped), 401, "APIG.0301") == (
        signature_fail(request, dropped, query="limit=5"))
    garbled = dict(request.header_params, Authorization="SDK-HMAC-SHA256 Access=" + sim.access_key)
    assert gateway_error(requests.get(request.url, headers=garbled), 401, "APIG.0301") == (
        f"{INCORRECT}: the Authorization header lacks SignedHeaders, Signature")
    other_algorithm = dict(request.header_params, Authorization="Basic dXNlcjpwYXNz")
    assert gateway_error(requests.get(request.url, headers=other_algorithm), 401, "APIG.0301") == (
        f"{INCORRECT}: the signing algorithm 'Basic' is not supported")


@pytest.mark.parametrize("minutes", [16, -16])
def test_clock_skew_over_15_minutes_is_refused(sim, minutes):
    target = project(sim, "cn-north-4").project_id
    sim.iam.clock = lambda: NOON
    skewed = dt.datetime.fromtimestamp(NOON, dt.timezone.utc).replace(tzinfo=None) - dt.timedelta(minutes=minutes)
    message = gateway_error(signed_images(sim, target, date=skewed), 401, "APIG.0301")
    assert message == (f"{INCORRECT}: signature expired, signature time:{skewed.strftime(SDK_DATE)},"
                       f"server time:20270115T080000Z")


def test_clock_skew_within_15_minutes_is_accepted(sim):
    target = project(sim, "cn-north-4").project_id
    for minutes in (14, -14):
        date = dt.datetime.now(dt.timezone.utc).replace(tzinfo=None) - dt.timedelta(minutes=minutes)
        assert signed_images(sim, target, date=date).status_code == 200


def test_missing_or_bad_sdk_date(sim):
    target = project(sim, "cn-north-4").project_id
    request = signed(sim, f"/v2/{target}/images", project_id=target)
    headers = {k: v for k, v in request.header_params.items() if k != "X-Sdk-Date"}
    assert gateway_error(requests.get(request.url, headers=headers), 401, "APIG.0301") == (
        f"{INCORRECT}: the X-Sdk-Date header is missing")
    headers["X-Sdk-Date"] = "yesterday"
    assert gateway_error(requests.get(request.url, headers=headers), 401, "APIG.0301") == (
        f"{INCORRECT}: the X-Sdk-Date header 'yesterday' is not like 20260101T120000Z")


def test_access_key_locks_after_more_than_five_bad_signatures(sim):
    target = project(sim, "cn-north-4").project_id
    for _ in range(5):
        bad = signed(sim, f"/v2/{target}/images", project_id=target, sk="bad" * 10)
        assert gateway_error(send(bad), 401, "APIG.0301") == signature_fail(bad)
    locked = "Incorrect IAM authentication information: AK access failed to reach the limit,forbidden."
    assert gateway_error(signed_images(sim, target, sk="bad" * 10), 401, "APIG.0301") == locked
    assert gateway_error(signed_images(sim, target), 401, "APIG.0301") == locked
    other = sim.iam.account(OTHER)
    theirs = project(sim, "cn-north-4", OTHER).project_id
    assert signed_images(sim, theirs, ak=other.access_key, sk=other.secret_key).status_code == 200
    assert with_token(sim, target, FIXED).status_code == 200
    sim.iam.clock = lambda: time.time() + 299
    assert gateway_error(signed_images(sim, target), 401, "APIG.0301") == locked
    sim.iam.clock = lambda: time.time() + 301
    date = dt.datetime.now(dt.timezone.utc).replace(tzinfo=None) + dt.timedelta(seconds=301)
    assert signed_images(sim, target, date=date).status_code == 200
    sim.iam.clock = time.time
    for _ in range(6):
        signed_images(sim, target, sk="bad" * 10)
    assert gateway_error(signed_images(sim, target), 401, "APIG.0301") == locked
    sim.iam.unlock_keys()
    assert signed_images(sim, target).status_code == 200


def test_good_signatures_reset_the_bad_count(sim):
    target = project(sim, "cn-north-4").project_id
    for _ in range(3):
        for _ in range(5):
            assert signed_images(sim, target, sk="bad" * 10).status_code == 401
        assert signed_images(sim, target).status_code == 200


def test_project_header_must_match_the_url(sim):
    main = project(sim, "cn-north-4").project_id
    finance = project(sim, "cn-north-4_finance").project_id
    theirs = project(sim, "cn-north-4", OTHER).project_id
    wrong_header = send(signed(sim, f"/v2/{main}/images", project_id=finance))
    assert gateway_error(wrong_header, 401, "APIG.0301") == request_mismatch(finance, main)
    assert gateway_error(signed_images(sim, theirs), 401, "APIG.0301") == not_the_keys(theirs)
    assert send(signed(sim, f"/v2/{main}/images")).status_code == 200
    no_header = send(signed(sim, f"/v2/{finance}/images"))
    assert gateway_error(no_header, 401, "APIG.0301") == request_mismatch(main, finance)
    assert signed_images(sim, finance).json()["total_count"] == 5
    mos = sim.iam.account().mos_project_id
    assert gateway_error(signed_images(sim, mos), 401, "APIG.0301") == not_the_keys(mos)


def test_disabled_project_refuses_workspace_calls(sim):
    disabled = project(sim, "ap-southeast-1").project_id
    for response in (with_token(sim, disabled, FIXED), signed_images(sim, disabled)):
        assert gateway_error(response, 403, "APIG.0302") == disabled_project(disabled)
    target = project(sim, "cn-east-3").project_id
    token = token_for(sim, target)
    sim.iam.set_enabled(target, False)
    assert gateway_error(with_token(sim, target, token), 403, "APIG.0302") == disabled_project(target)
    sim.iam.set_enabled(target, True)
    assert with_token(sim, target, token).status_code == 200


def test_temporary_credentials(sim):
    target = project(sim, "cn-north-4").project_id
    ak, sk, security_token = sim.iam.issue_temporary_credentials()
    assert ak != sim.access_key and len(sk) == 40 and len(security_token) > 200
    ok = signed_images(sim, target, ak=ak, sk=sk, headers={"X-Security-Token": security_token})
    assert ok.status_code == 200
    message = gateway_error(signed_images(sim, target, ak=ak, sk=sk), 401, "APIG.0301")
    assert message == f"{INCORRECT}: the X-Security-Token header is required with a temporary access key"
    invalid = f"{INCORRECT}: the security token is invalid"
    wrong = signed_images(sim, target, ak=ak, sk=sk, headers={"X-Security-Token": security_token[:-8] + "A" * 8})
    assert gateway_error(wrong, 401, "APIG.0301") == invalid
    _, _, other_token = sim.iam.issue_temporary_credentials()
    mixed = signed_images(sim, target, ak=ak, sk=sk, headers={"X-Security-Token": other_token})
    assert gateway_error(mixed, 401, "APIG.0301") == invalid
    permanent = signed_images(sim, target, headers={"X-Security-Token": security_token})
    assert gateway_error(permanent, 401, "APIG.0301") == invalid
    sim.iam.expire_tokens()
    expired = signed_images(sim, target, ak=ak, sk=sk, headers={"X-Security-Token": security_token})
    assert gateway_error(expired, 401, "APIG.0301") == f"{INCORRECT}: the security token has expired"
    assert signed_images(sim, target).status_code == 200


def test_temporary_credentials_of_another_account(sim):
    ak, sk, security_token = sim.iam.issue_temporary_credentials(OTHER, ttl=60)
    theirs = project(sim, "cn-north-4", OTHER).project_id
    assert signed_images(sim, theirs, ak=ak, sk=sk, headers={"X-Security-Token": security_token}).status_code == 200
    mine = project(sim, "cn-north-4").project_id
    response = signed_images(sim, mine, ak=ak, sk=sk, headers={"X-Security-Token": security_token})
    assert gateway_error(response, 401, "APIG.0301") == not_the_keys(mine)


@pytest.mark.parametrize(
    "query",
    [
        [("name", "with space")],
        [("name", "中文 Ünïcode テスト")],
        [("name", "tilde~and-dash_dot.")],
        [("tag", "b"), ("tag", "a"), ("tag", "c")],
        [("z", "1"), ("a", "2"), ("m", "")],
        [("reserved", "!*'();:@&=+$,/?#[]%")],
        [("key with space", "v"), ("ключ", "значение")],
        [("limit", 3), ("os_type", "Linux"), ("sort_field", "created_at"), ("sort_type", "desc")],
    ],
)
def test_signed_query_strings(sim, query):
    target = project(sim, "cn-north-4").project_id
    request = signed(sim, f"/v2/{target}/images", query, project_id=target)
    sdk_url = send(request)
    assert sdk_url.status_code == 200, sdk_url.text
    form_encoded = requests.get(images_url(sim, target), params=list(reversed(query)), headers=request.header_params)
    assert form_encoded.status_code == 200, form_encoded.text
    assert form_encoded.json() == sdk_url.json()
    if any(key == "tag" for key, _ in query):
        assert "tag=a&tag=b&tag=c" in request.url
        doubled = requests.get(request.url + "&tag=d", headers=request.header_params)
        assert gateway_error(doubled, 401, "APIG.0301") == signature_fail(request, query="tag=a&tag=b&tag=c&tag=d")


def test_percent_encoded_path_segments(sim):
    target = project(sim, "cn-north-4").project_id
    request = signed(sim, f"/v2/{target}/images", project_id=target)
    encoded = request.url.replace(f"/v2/{target}/", "/v2/" + "".join(f"%{ord(c):02x}" for c in target) + "/")
    assert requests.get(encoded, headers=request.header_params).status_code == 200


def test_signing_matches_the_sdk_canonical_form():
    request = SdkRequest(method="GET", schema="http", host="127.0.0.1:1", resource_path="/v2/a b/images",
                         query_params=[("b", "2 3"), ("a", "~x"), ("b", "1")],
                         header_params={"Host": "127.0.0.1:1", "X-Sdk-Date": "20260101T000000Z",
                                        "X-Project-Id": " p "},
                         body="")
    Signer(BasicCredentials("AK", "SK")).sign(request)
    received = dict(request.header_params)
    authorization = signing.parse_authorization(received["Authorization"])
    assert authorization.access_key == "AK"
    assert authorization.signed_headers == ("host", "x-project-id", "x-sdk-date")
    assert signing.canonical_uri("/v2/a%20b/images") == "/v2/a%20b/images/"
    assert signing.canonical_query("b=2+3&a=%7Ex&b=1") == "a=~x&b=1&b=2%203"
    assert signing.verify("SK", authorization, "GET", "/v2/a%20b/images", request.uri.partition("?")[2], received,
                          b"")
    assert not signing.verify("sk", authorization, "GET", "/v2/a%20b/images", request.uri.partition("?")[2],
                              received, b"")


# the official SDK client


def sdk_client(sim: Simulator, credentials: BasicCredentials) -> WorkspaceClient:
    return WorkspaceClient.new_builder().with_credentials(credentials).with_endpoints([sim.url]).build()


def sdk_images(client: WorkspaceClient, limit: int) -> list:
    images, offset = [], 0
    while True:
        response = client.list_images(ListImagesRequest(limit=limit, offset=offset))
        images += response.images
        offset += limit
        if offset >= response.total_count:
            return images


def test_official_sdk_client_lists_the_simulator_images():
    with Simulator(projects=2, images=230, seed=5) as sim:
        target = sim.projects[1].project_id
        client = sdk_client(sim, BasicCredentials(sim.access_key, sim.secret_key, target))
        images = sdk_images(client, 100)
        expected = sim.images(target)
        assert len(images) == 230
        assert [image.id for image in images] == [image["id"] for image in expected]
        for got, want in zip(images, expected):
            assert {key: getattr(got, key) for key in want} == want
        linux = client.list_images(ListImagesRequest(os_type="Linux", image_type="gold", limit=100))
        assert linux.total_count == sum(1 for i in expected if i["os_type"] == "Linux" and i["image_type"] == "gold")
        paths = {r.path for r in sim.requests}
        assert paths == {f"/v2/{target}/images"}
        assert all(r.status == 200 for r in sim.requests)


def test_official_sdk_discovers_the_project_through_iam(sim):
    credentials = BasicCredentials(sim.access_key, sim.secret_key).with_iam_endpoint(sim.url)
    client = (WorkspaceClient.new_builder().with_credentials(credentials)
              .with_region(Region("cn-east-3", sim.url)).build())
    target = project(sim, "cn-east-3").project_id
    assert credentials.project_id == target
    assert [i.id for i in client.list_images(ListImagesRequest()).images] == [i["id"] for i in sim.images(target)]
    assert sim.iam_calls("/v3/projects") == 1
    assert sim.requests[0].query == {"name": "cn-east-3"}


def test_official_sdk_with_temporary_credentials_and_errors(sim):
    target = project(sim, "cn-north-4").project_id
    ak, sk, security_token = sim.iam.issue_temporary_credentials()
    temporary = BasicCredentials(ak, sk, target).with_security_token(security_token)
    assert len(sdk_images(sdk_client(sim, temporary), 5)) == 12
    with pytest.raises(ClientRequestException) as refused:
        sdk_client(sim, BasicCredentials(sim.access_key, "wrong" * 8, target)).list_images(ListImagesRequest())
    assert refused.value.status_code == 401
    assert refused.value.error_code == "APIG.0301"
    host = sim.url.removeprefix("http://")
    assert re.fullmatch(
        rf"{INCORRECT}: verify aksk signature fail, canonicalRequest:GET\|/v2/{target}/images/\|\|"
        rf"content-type:application/json\|host:{re.escape(host)}\|user-agent:huaweicloud-usdk-python/[^|]+\|"
        rf"x-project-id:{target}\|x-sdk-date:\d{{8}}T\d{{6}}Z\|\|content-type;host;user-agent;x-project-id;"
        rf"x-sdk-date\|{hashlib.sha256(b'').hexdigest()}", refused.value.error_msg)
    with pytest.raises(ClientRequestException) as disabled:
        disabled_id = project(sim, "ap-southeast-1").project_id
        sdk_client(sim, BasicCredentials(sim.access_key, sim.secret_key, disabled_id)).list_images(
            ListImagesRequest())
    assert (disabled.value.status_code, disabled.value.error_code) == (403, "APIG.0302")


# records and command line


def test_iam_calls_are_recorded_without_secrets(sim):
    target = project(sim, "cn-north-4").project_id
    post_token(sim, {"project": {"id": target}}, password="wrong")
    token = token_for(sim, target)
    requests.get(f"{sim.url}/v3/auth/projects", headers={"X-Auth-Token": token})
    send(signed(sim, "/v3/projects", [("name", "cn-north-4")]))
    with_token(sim, target, token)
    assert [(r.method, r.path, r.status, r.project_id) for r in sim.requests] == [
        ("POST", "/v3/auth/tokens", 401, None),
        ("POST", "/v3/auth/tokens", 201, None),
        ("GET", "/v3/auth/projects", 200, None),
        ("GET", "/v3/projects", 200, None),
        ("GET", f"/v2/{target}/images", 200, target),
    ]
    assert sim.iam_calls() == 2
    assert sim.iam_calls(status=201) == 1
    assert sim.iam_calls("/v3") == 4
    assert sim.iam_calls("/v2") == 1
    recorded = repr(sim.requests)
    for secret in (token, DEFAULT_PASSWORD, "wrong", sim.secret_key, FIXED):
        assert secret not in recorded


def test_cli_prints_the_credentials_and_honours_the_flags():
    process = subprocess.Popen(
        [sys.executable, "-m", "workspace_images.simulator", "--projects", "1", "--images", "2", "--domain", "acme", "--user", "ann",
         "--password", "pw-123", "--access-key", "AKCLI", "--secret-key", "SKCLI", "--token-ttl", "120"],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, cwd=ROOT,
    )
    try:
        lines = []
        while not lines or not lines[-1].startswith("Press Ctrl-C"):
            lines.append(process.stdout.readline())
            assert lines[-1], "the simulator stopped early"
        text = "".join(lines)
        url = re.search(r"http://127\.0\.0\.1:\d+", lines[0]).group(0)
        project_id = lines[4].split(":")[1].strip()
        for shown in ("acme", "ann", "pw-123", "AKCLI", "SKCLI", "120 s"):
            assert shown in text
        body = {"auth": {"identity": {"methods": ["password"], "password": {"user": {
            "name": "ann", "password": "pw-123", "domain": {"name": "acme"}}}}, "scope": {"project": {"id": project_id}}}}
        response = requests.post(f"{url}/v3/auth/tokens", json=body)
        assert response.status_code == 201
        token = response.json()["token"]
        lifetime = (dt.datetime.fromisoformat(token["expires_at"][:-1]) -
                    dt.datetime.fromisoformat(token["issued_at"][:-1]))
        assert lifetime == dt.timedelta(seconds=120)
        images = requests.get(f"{url}/v2/{project_id}/images",
                              headers={"X-Auth-Token": response.headers["X-Subject-Token"]})
        assert images.json()["total_count"] == 2
        request = SdkRequest(method="GET", schema="http", host=url.removeprefix("http://"),
                             resource_path=f"/v2/{project_id}/images", query_params=[],
                             header_params={"X-Project-Id": project_id}, body="")
        Signer(BasicCredentials("AKCLI", "SKCLI")).sign(request)
        assert send(request).json()["total_count"] == 2
    finally:
        process.terminate()
        process.communicate(timeout=10)
