"""AK/SK signing compared with Huawei's official signer, and the IAM token cache."""

from __future__ import annotations

import datetime as dt
from typing import Any, Dict, List, Optional, Tuple
from urllib.parse import parse_qsl, urlsplit

import pytest
import requests
from huaweicloudsdkcore.sdk_request import SdkRequest
from huaweicloudsdkcore.signer.signer import Signer

from workspace_images.source.auth import AkSkAuth, signature, signed_header_names

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
