"""AK/SK signing compared with Huawei's official signer, and the IAM token cache on a fake clock."""

from __future__ import annotations

import datetime as dt
from typing import Any, Dict, List, Optional, Tuple
from urllib.parse import parse_qsl, urlsplit

import pytest
import requests
from huaweicloudsdkcore.sdk_request import SdkRequest
from huaweicloudsdkcore.signer.signer import Signer

from workspace_images.simulator import Simulator
from workspace_images.auth import AkSkAuth, IamTokenAuth, IamTokenProvider, TokenAuth, signature, signed_header_names
from workspace_images.sessions import make_session
from workspace_images.settings import REQUEST_HEADERS

AK, SK = "HPUAEXAMPLEAK0000001", "exampleSecretKey+/=0123456789abcdefghijkl"
NOW = dt.datetime(2026, 11, 27, 8, 30, 15, tzinfo=dt.timezone.utc)


class Credentials:
    ak, sk = AK, SK


def official_authorization(prepared: requests.PreparedRequest, body: Optional[bytes]) -> str:
    parts = urlsplit(prepared.url)
    signed = signed_header_names(prepared.headers)
    request = SdkRequest(
        method=prepared.method,
        schema=parts.scheme,
        host=parts.netloc,
        resource_path=parts.path,
        query_params=parse_qsl(parts.query, keep_blank_values=True),
        header_params={name: prepared.headers[name] for name in prepared.headers if name.lower() in signed},
        body=body or "",
    )
    return Signer(Credentials()).sign(request).header_params["Authorization"]


CASES: List[Tuple[str, str, Optional[Dict[str, Any]], Optional[bytes]]] = [
    ("GET", "https://workspace.cn-north-4.myhuaweicloud.com/v2/0605767e1f00d5c32f55c0137fb2b1d7/images", None, None),
    ("GET", "https://workspace.cn-north-4.myhuaweicloud.com/v2/p1/images",
     {"limit": 100, "offset": 200, "sort_field": "created_at", "sort_type": "asc"}, None),
    ("GET", "http://127.0.0.1:8080/v2/p1/images", {"os_type": "Windows Server", "name": "统信 桌面"}, None),
    ("GET", "http://127.0.0.1:8080/v2/p1/images", {"a": ["2", "1", "1"], "b": "x~y", "c": ""}, None),
    ("GET", "http://127.0.0.1:8080/v2/p1/images", {"q": "a+b&c=d/e?f", "z": "Ünïcødé ✓", "A": "upper"}, None),
    ("GET", "https://iam.myhuaweicloud.com/v3/projects", {"name": "cn-north-4_finance", "enabled": "true"}, None),
    ("GET", "http://127.0.0.1:8080/v2/with%20space/images~x/", None, None),
    ("POST", "https://iam.myhuaweicloud.com/v3/auth/tokens", None, b'{"auth": {"identity": {}}}'),
    ("POST", "http://127.0.0.1:8080/v2/p1/images/batch", {"x": "1"}, "中文 body".encode("utf-8")),
    ("DELETE", "http://127.0.0.1:8080/v2/p1/images/abc", None, b""),
]


@pytest.mark.parametrize("method, url, params, body", CASES)
@pytest.mark.parametrize("project_id, security_token", [("0605767e1f00d5c32f55c0137fb2b1d7", None),
                                                         (None, "temporary-security-token-value")])
def test_signature_matches_the_official_signer(
    method: str, url: str, params: Optional[Dict[str, Any]], body: Optional[bytes],
    project_id: Optional[str], security_token: Optional[str],
) -> None:
    headers = {"Content-Type": "application/json"}
    auth = AkSkAuth(AK, SK, project_id=project_id, security_token=security_token, clock=lambda: NOW)
    prepared = requests.Request(method, url, params=params, data=body, headers=headers, auth=auth).prepare()
    ours = prepared.headers["Authorization"]
    assert ours.startswith(f"SDK-HMAC-SHA256 Access={AK}, SignedHeaders=content-type;host;")
    assert prepared.headers["X-Sdk-Date"] == "20261127T083015Z"
    assert ("x-project-id" in ours) == bool(project_id) and ("x-security-token" in ours) == bool(security_token)
    assert ours == official_authorization(prepared, body)


def test_signature_changes_with_every_signed_part() -> None:
    headers = {"X-Sdk-Date": "20261127T083015Z", "Host": "h", "Content-Type": "application/json"}
    names = ["content-type", "host", "x-sdk-date"]
    base = signature(SK, "GET", "http://h/v2/p/images?limit=1", headers, None, names)
    assert base != signature(SK + "x", "GET", "http://h/v2/p/images?limit=1", headers, None, names)
    assert base != signature(SK, "GET", "http://h/v2/q/images?limit=1", headers, None, names)
    assert base != signature(SK, "GET", "http://h/v2/p/images?limit=2", headers, None, names)
    assert base != signature(SK, "GET", "http://h/v2/p/images?limit=1", {**headers, "Host": "g"}, None, names)
    assert base != signature(SK, "GET", "http://h/v2/p/images?limit=1", headers, b"{}", names)


def test_secrets_stay_out_of_repr() -> None:
    assert SK not in repr(AkSkAuth(AK, SK)) and AK not in repr(AkSkAuth(AK, SK))


class FakeClock:
    """One clock for the simulator (epoch seconds) and the token provider (aware datetimes), moved by hand."""

    def __init__(self, epoch: float) -> None:
        self.now = epoch

    def epoch(self) -> float:
        return self.now

    def utc(self) -> dt.datetime:
        return dt.datetime.fromtimestamp(self.now, dt.timezone.utc)


@pytest.mark.parametrize("lifetime, renewed_at", [
    (20, [0, 15, 30, 45, 60]),  # a short-lived token is renewed a quarter of its lifetime (5 min) before it ends
    (60, [0, 50]),  # a longer one TOKEN_RENEW_MARGIN (10 min) before
])
def test_a_token_is_renewed_before_it_expires(sim: Simulator, lifetime: int, renewed_at: List[int]) -> None:
    start = NOW.timestamp()
    clock = FakeClock(start)
    sim.iam.clock = clock.epoch
    sim.iam.token_ttl = lifetime * 60
    project = sim.add_project("cn-north-4", images=1)
    account = sim.iam.account()
    http = make_session()[0]
    issued: List[Tuple[float, str]] = []  # (minute, token) of each token IAM issued

    def post(url: str, **kwargs: Any) -> requests.Response:
        response = http.post(url, **kwargs)
        issued.append(((clock.now - start) / 60, response.headers["X-Subject-Token"]))
        return response

    provider = IamTokenProvider(sim.url, account.user, account.password, account.domain, post=post, clock=clock.utc)
    auth = IamTokenAuth(provider, project.project_id, project.region)
    url = f"{sim.url}/v2/{project.project_id}/images"
    statuses = []
    for minute in range(61):  # one request a minute for an hour
        clock.now = start + minute * 60
        statuses.append(http.get(url, auth=auth, headers=REQUEST_HEADERS).status_code)
    assert statuses == [200] * 61
    assert [minute for minute, _ in issued] == renewed_at
    assert sim.iam_calls("/v3/auth/tokens", status=201) == len(renewed_at)
    # renewed before it had to be: the first token, still good in its last minute, is refused when it ends
    first = TokenAuth(issued[0][1])
    clock.now = start + (lifetime - 1) * 60
    assert http.get(url, auth=first, headers=REQUEST_HEADERS).status_code == 200
    clock.now = start + lifetime * 60
    refused = http.get(url, auth=first, headers=REQUEST_HEADERS)
    assert (refused.status_code, refused.json()["error_code"]) == (401, "APIG.0307")
