"""The simulator's gateway flow control, over real HTTP on 127.0.0.1: a token bucket per account, 429 APIGW.0308.

The server clock is frozen (``sim.iam.clock``) and moved by the tests, so every count is exact: no request's
fate depends on how fast the machine is.
"""

from __future__ import annotations

import argparse
import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import requests
from huaweicloudsdkcore.auth.credentials import BasicCredentials
from huaweicloudsdkcore.sdk_request import SdkRequest
from huaweicloudsdkcore.signer.signer import Signer

from workspace_images.pipelines.arguments import build_parser
from workspace_images.simulator import DEFAULT_DOMAIN, DEFAULT_PASSWORD, DEFAULT_USER, Simulator
from workspace_images.simulator.cli import add_arguments, build_simulator
from workspace_images.simulator.throttle import RateLimit

FIXED = "fixed-token-for-throttle-tests"
OTHER = "other-domain"
ROOT = Path(__file__).resolve().parents[1]


def over_the_limit(limit: str) -> str:
    return f"The throttling threshold has been reached: policy user over ratelimit,limit:{limit},time:1 second"


class Clock:
    """A server clock that stands still until a test moves it (near the real time, so AK/SK dates pass)."""

    def __init__(self) -> None:
        self.now = float(int(time.time()))

    def __call__(self) -> float:
        return self.now

    def move(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def sim():
    """The default account with one project, account ``other-domain`` with one; the clock frozen."""
    with Simulator(projects=0, seed=5, token=FIXED) as simulator:
        simulator.add_project("cn-north-4", images=3)
        simulator.iam.add_account(OTHER, user="other-user", password="other-password")
        simulator.add_project("cn-north-4", images=2, account=OTHER)
        simulator.iam.clock = Clock()
        yield simulator


def clock(sim: Simulator) -> Clock:
    assert isinstance(sim.iam.clock, Clock)
    return sim.iam.clock


def pid(sim: Simulator, domain: str | None = None) -> str:
    return sim.projects_of(domain)[0].project_id


def get(sim: Simulator, token: str = FIXED, domain: str | None = None) -> requests.Response:
    return requests.get(f"{sim.url}/v2/{pid(sim, domain)}/images", headers={"X-Auth-Token": token})


def signed_get(sim: Simulator, access_key: str, secret_key: str, domain: str | None = None,
               security_token: str | None = None) -> requests.Response:
    """An images request signed with the official SDK's signer."""
    project_id = pid(sim, domain)
    headers = {"Content-Type": "application/json", "X-Project-Id": project_id}
    if security_token is not None:
        headers["X-Security-Token"] = security_token
    request = SdkRequest(method="GET", schema="http", host=sim.url.removeprefix("http://"),
                         resource_path=f"/v2/{project_id}/images", query_params=[], header_params=headers, body="")
    request = Signer(BasicCredentials(access_key, secret_key)).sign(request)
    return requests.get(request.url, headers=request.header_params)


def password_token(sim: Simulator, domain: str = DEFAULT_DOMAIN, user: str = DEFAULT_USER,
                   password: str = DEFAULT_PASSWORD) -> requests.Response:
    body = {"auth": {"identity": {"methods": ["password"], "password": {"user": {
        "name": user, "password": password, "domain": {"name": domain}}}},
        "scope": {"project": {"id": pid(sim, None if domain == DEFAULT_DOMAIN else domain)}}}}
    return requests.post(f"{sim.url}/v3/auth/tokens", json=body)


def throttled_body(response: requests.Response, limit: str) -> dict:
    """The 429's body, checked against the gateway's; returns the headers that matter."""
    assert response.status_code == 429, response.text
    assert response.json() == {"error_code": "APIGW.0308", "error_msg": over_the_limit(limit),
                               "request_id": response.headers["X-Request-Id"]}
    return {"Retry-After": response.headers.get("Retry-After")}


def statuses(responses: list[requests.Response]) -> list[int]:
    return [response.status_code for response in responses]


def test_a_burst_goes_then_429_with_the_gateway_body_and_retry_after(sim):
    numbers: list[int] = []
    sim.on_request(pid(sim), lambda _sim, _pid, number: numbers.append(number))
    sim.set_rate_limit(2)
    assert statuses([get(sim), get(sim)]) == [200, 200]
    assert throttled_body(get(sim), "2") == {"Retry-After": "1"}
    assert [(r.path, r.status) for r in sim.requests] == [(f"/v2/{pid(sim)}/images", s) for s in (200, 200, 429)]
    assert numbers == [1, 2]  # the throttled request never reached the project
    sim.set_rate_limit(0.25, burst=1)
    assert get(sim).status_code == 200
    assert throttled_body(get(sim), "0.25") == {"Retry-After": "4"}


def test_no_retry_after_when_switched_off():
    with Simulator(projects=1, images=2, token=FIXED, rate_limit=1, retry_after=False) as sim:
        sim.iam.clock = Clock()
        assert get(sim).status_code == 200
        response = get(sim)
        assert throttled_body(response, "1") == {"Retry-After": None}
        assert "Retry-After" not in response.headers


def test_the_bucket_refills_as_the_server_clock_moves_and_throttled_requests_take_no_token(sim):
    sim.set_rate_limit(0.25, burst=2)
    assert statuses([get(sim), get(sim)]) == [200, 200]
    assert [throttled_body(get(sim), "0.25") for _ in range(3)] == [{"Retry-After": "4"}] * 3
    clock(sim).move(2.5)  # 0.625 of a token: 1.5 s to go
    assert throttled_body(get(sim), "0.25") == {"Retry-After": "2"}
    clock(sim).move(1.5)
    assert get(sim).status_code == 200
    assert throttled_body(get(sim), "0.25") == {"Retry-After": "4"}
    clock(sim).move(3600)  # a full bucket holds 2, however long it waited
    assert statuses([get(sim), get(sim), get(sim)]) == [200, 200, 429]


def test_two_accounts_each_have_a_bucket_and_a_limit_of_their_own(sim):
    sim.set_rate_limit(1, account=DEFAULT_DOMAIN)
    sim.set_rate_limit(3, retry_after=False, account=OTHER)
    other = sim.iam.account(OTHER)
    # the default account: the fixed token and a password token of its user share one bucket
    token = password_token(sim).headers["X-Subject-Token"]
    assert get(sim).status_code == 200
    assert throttled_body(get(sim, token), "1") == {"Retry-After": "1"}
    assert throttled_body(signed_get(sim, sim.access_key, sim.secret_key), "1") == {"Retry-After": "1"}
    # the other account, by its AK/SK and by a temporary AK of its own, is not held up by that
    ak, sk, security_token = sim.iam.issue_temporary_credentials(OTHER)
    assert statuses([signed_get(sim, other.access_key, other.secret_key, OTHER),
                     signed_get(sim, ak, sk, OTHER, security_token),
                     signed_get(sim, other.access_key, other.secret_key, OTHER)]) == [200, 200, 200]
    assert throttled_body(signed_get(sim, ak, sk, OTHER, security_token), "3") == {"Retry-After": None}
    assert (sim.rate_limit(), sim.rate_limit(DEFAULT_DOMAIN), sim.rate_limit(OTHER)) == (
        None, RateLimit(1.0, 1, True), RateLimit(3.0, 3, False))
    assert sim.rate_stats() == {DEFAULT_DOMAIN: {"allowed": 1, "throttled": 2}, OTHER: {"allowed": 3, "throttled": 1}}


def test_an_account_may_be_left_unlimited_under_a_shared_limit(sim):
    sim.set_rate_limit(1)
    sim.set_rate_limit(None, account=OTHER)
    other = sim.iam.account(OTHER)
    assert statuses([get(sim), get(sim)]) == [200, 429]
    assert statuses([signed_get(sim, other.access_key, other.secret_key, OTHER) for _ in range(5)]) == [200] * 5
    sim.throttle.follow_shared(OTHER)
    assert statuses([signed_get(sim, other.access_key, other.secret_key, OTHER) for _ in range(2)]) == [200, 429]


def test_bad_credentials_are_refused_401_before_any_throttling(sim):
    sim.set_rate_limit(1)
    refused = [get(sim, "not-a-token"), signed_get(sim, sim.access_key, "wrong-secret-key"),
               signed_get(sim, "UNKNOWNACCESSKEY", "x")]
    assert [(r.status_code, r.json()["error_code"]) for r in refused] == [(401, "APIG.0301")] * 3
    assert get(sim).status_code == 200  # the refused requests took no token
    assert [(r.status_code, r.json()["error_code"]) for r in (get(sim, "not-a-token"), get(sim))] == [
        (401, "APIG.0301"), (429, "APIGW.0308")]
    assert sim.rate_stats() == {DEFAULT_DOMAIN: {"allowed": 1, "throttled": 1}}


def test_iam_calls_are_not_limited(sim):
    sim.set_rate_limit(1)
    tokens = [password_token(sim) for _ in range(3)]
    assert statuses(tokens) == [201, 201, 201]
    token = tokens[0].headers["X-Subject-Token"]
    listings = [requests.get(f"{sim.url}/v3/auth/projects", headers={"X-Auth-Token": token}) for _ in range(3)]
    assert statuses(listings) == [200, 200, 200]
    assert sim.rate_stats() == {}
    assert statuses([get(sim, token), get(sim, token)]) == [200, 429]


def test_counters_count_every_account_and_reset_on_demand(sim):
    other = sim.iam.account(OTHER)
    assert statuses([get(sim), get(sim)]) == [200, 200]  # no limit: counted as allowed
    sim.set_rate_limit(1)
    assert statuses([get(sim), get(sim), get(sim)]) == [200, 429, 429]
    assert statuses([signed_get(sim, other.access_key, other.secret_key, OTHER) for _ in range(2)]) == [200, 429]
    assert sim.rate_stats() == {DEFAULT_DOMAIN: {"allowed": 3, "throttled": 2}, OTHER: {"allowed": 1, "throttled": 1}}
    assert (sim.throttled(), sim.throttled(DEFAULT_DOMAIN), sim.throttled(OTHER), sim.throttled("nobody")) == (
        3, 2, 1, 0)
    sim.reset_rate_stats()
    assert (sim.rate_stats(), sim.throttled()) == ({}, 0)
    assert get(sim).status_code == 429  # the buckets keep their tokens
    assert sim.rate_stats() == {DEFAULT_DOMAIN: {"allowed": 0, "throttled": 1}}


def test_concurrent_requests_take_exactly_the_burst(sim):
    sim.set_rate_limit(1, burst=5)
    results: list[int] = []
    lock = threading.Lock()

    def one() -> None:
        status = get(sim).status_code
        with lock:
            results.append(status)

    threads = [threading.Thread(target=one) for _ in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(results) == [200] * 5 + [429] * 15
    assert sim.rate_stats() == {DEFAULT_DOMAIN: {"allowed": 5, "throttled": 15}}


def test_limits_are_checked_and_burst_defaults_to_the_whole_rate():
    with Simulator(projects=0, rate_limit=2.5) as sim:
        assert sim.rate_limit() == RateLimit(2.5, 2, True)
        for rate, burst in ((0.5, 1), (10, 10), (10.9, 10)):
            sim.set_rate_limit(rate)
            assert sim.rate_limit() == RateLimit(float(rate), burst, True)
        sim.set_rate_limit(None)
        assert sim.rate_limit() is None
        for rate, burst, message in ((0, None, "rate_limit must be a finite number of requests a second > 0, got 0"),
                                     (float("inf"), None, "rate_limit must be a finite number of requests a "
                                                          "second > 0, got inf"),
                                     (1, 0, "burst must be an integer >= 1, got 0"),
                                     (1, 1.5, "burst must be an integer >= 1, got 1.5"),
                                     (None, 3, "burst needs a rate_limit")):
            with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
                sim.set_rate_limit(rate, burst)
    with pytest.raises(ValueError, match="^burst needs a rate_limit$"):
        Simulator(projects=0, burst=2)


def test_cli_rate_limit_flags():
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    args = parser.parse_args([])
    assert (args.rate_limit, args.burst, args.retry_after) == (None, None, True)
    assert build_simulator(args).rate_limit() is None
    args = parser.parse_args(["--rate-limit", "2.5", "--burst", "4", "--no-retry-after"])
    assert (args.rate_limit, args.burst, args.retry_after) == (2.5, 4, False)
    assert build_simulator(args).rate_limit() == RateLimit(2.5, 4, False)
    for bad in (["--rate-limit", "0"], ["--rate-limit", "x"], ["--burst", "0"], ["--burst", "1.5"]):
        with pytest.raises(SystemExit):
            parser.parse_args(bad)
    with pytest.raises(SystemExit, match="^error: --burst needs --rate-limit$"):
        build_simulator(parser.parse_args(["--burst", "3"]))
    forwarded = build_parser().parse_args(["simulator", "--rate-limit", "10", "--burst", "20", "--no-retry-after"])
    assert (forwarded.rate_limit, forwarded.burst, forwarded.retry_after) == (10, 20, False)


def test_cli_serves_with_a_rate_limit():
    env = {**os.environ, "PYTHONPATH": str(ROOT), "WORKSPACE_SIMULATOR_TOKEN": "env-token"}
    process = subprocess.Popen(
        [sys.executable, "-m", "workspace_images.simulator", "--projects", "1", "--images", "2",
         "--rate-limit", "0.01", "--no-retry-after"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=ROOT,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    try:
        lines = [process.stdout.readline() for _ in range(5)]
        url = re.search(r"http://127\.0\.0\.1:\d+", lines[0]).group(0)
        assert lines[1] == ("  seed 1, day 0, latency 0 ms, fault rate 0, "
                            "rate limit 0.01/s per account (burst 1, 429 without Retry-After)\n")
        project_id = lines[4].split(":")[1].strip()
        answers = [requests.get(f"{url}/v2/{project_id}/images", headers={"X-Auth-Token": "env-token"})
                   for _ in range(2)]
        assert answers[0].status_code == 200  # the next token comes 100 s later
        assert throttled_body(answers[1], "0.01") == {"Retry-After": None}
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=10) == 0
    finally:
        process.kill()
        process.communicate()
