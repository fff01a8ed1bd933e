"""The run's HTTP sessions are requests sessions of their own class, read the proxy settings as requests does."""

from __future__ import annotations

import socket

import pytest
import requests

from workspace_images.simulator import Simulator
from workspace_images.sessions import BoundedSession, ThreadSessions
from workspace_images.settings import REQUEST_HEADERS
from tests.helpers import TOKEN


def test_the_session_is_a_requests_session_whose_methods_are_its_class() -> None:
    session, adapter = ThreadSessions().for_project(None)
    assert isinstance(session, requests.Session)
    assert type(session) is BoundedSession
    assert [name for name in ("send", "merge_environment_settings", "request") if name in vars(session)] == []
    assert session.adapter is adapter


def test_a_proxy_set_between_two_requests_is_used_by_the_second(sim: Simulator, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RUNTIME__REQUEST_MAX_ATTEMPTS", "1")  # a refused proxy is not waited for again
    project = sim.add_project("cn-north-4", images=1)
    session, _ = ThreadSessions().for_project(None)
    url = f"{sim.url}/v2/{project.project_id}/images"
    headers = {**REQUEST_HEADERS, "X-Auth-Token": TOKEN}
    assert session.get(url, headers=headers).status_code == 200
    with socket.socket() as closed:  # a port nothing listens on: the proxy refuses the connection
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    monkeypatch.setenv("HTTP_PROXY", f"http://127.0.0.1:{port}")
    with pytest.raises(requests.exceptions.ProxyError):
        session.get(url, headers=headers)
