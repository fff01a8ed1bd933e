"""Each account's requests at its API gateway's rate limit: the limiter's cut and growth on an injected clock,
the account-wide pause, and runs against the simulator's flow control (429 APIGW.0308) over real HTTP."""

from __future__ import annotations

import io
import json
import threading
from pathlib import Path
from typing import Dict, List, Optional

import pytest
from requests import Response

from workspace_images.simulator import DEFAULT_DOMAIN, Simulator
from workspace_images.simulator.throttle import throttle_message
from workspace_images.throttle import AccountLimiter, AccountTurns, ThrottleTimedOut
from tests.helpers import cli, load, one_line, query, run_args, targets

ACME = "acme"


class Clock:
    """A clock that moves only when a limiter sleeps on it (or the test moves it)."""

    def __init__(self, now: float = 100.0) -> None:
        self.now = now
        self.sleeps: List[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def answer_429(message: str = "The throttling threshold has been reached", retry_after: Optional[str] = None) -> Response:
    response = Response()
    response.status_code = 429
    response.raw = io.BytesIO(json.dumps({"error_code": "APIGW.0308", "error_msg": message}).encode())
    if retry_after is not None:
        response.headers["Retry-After"] = retry_after
    return response


def limiter(clock: Clock, rate_limit: Optional[float] = None) -> AccountLimiter:
    return AccountLimiter("default", rate_limit, clock=clock, sleep=clock.sleep)


# -- cut and growth, on an injected clock -----------------------------------------------------


def test_a_429_without_limit_halves_the_rate_sent_over_the_last_second() -> None:
    clock = Clock()
    paced = limiter(clock)
    for _ in range(6):  # unpaced: six requests in the last second, none waits
        assert paced.acquire(200.0) == clock.now
        clock.now += 0.1
    sent_before_cut = clock.now - 0.1
    paced.throttled(answer_429(), sent_at=sent_before_cut)
    assert (paced.rate, paced.ceiling) == (3.0, None)
    paced.throttled(answer_429(), sent_at=sent_before_cut)  # sent before the cut: counted, not cut again
    assert (paced.rate, paced.throttled_count) == (3.0, 2)
    for rate in (1.5, 0.75, 0.5, 0.5):  # each 429 of a request sent after the last cut halves it, down to 0.5
        clock.now += 0.5
        paced.throttled(answer_429(), sent_at=clock.now)
        assert paced.rate == rate
    assert clock.sleeps == []


def test_a_429_that_says_limit_n_sets_the_ceiling_to_095_of_it_unless_rate_limit_is_lower() -> None:
    clock = Clock()
    learned = limiter(clock)
    learned.throttled(answer_429(throttle_message(10)), sent_at=clock.now)
    assert (learned.rate, learned.ceiling) == (9.5, 9.5)
    lower = limiter(clock, rate_limit=5.0)
    lower.throttled(answer_429(throttle_message(10)), sent_at=clock.now)
    assert (lower.rate, lower.ceiling) == (2.5, 5.0)  # at its own ceiling already: someone else shares the quota
    higher = limiter(clock, rate_limit=20.0)
    higher.throttled(answer_429(throttle_message(10)), sent_at=clock.now)
    assert (higher.rate, higher.ceiling) == (9.5, 9.5)
    per_minute = limiter(clock)
    per_minute.throttled(answer_429("policy user over ratelimit,limit:120,time:1 minute"), sent_at=clock.now)
    assert (per_minute.rate, per_minute.ceiling) == (1.9, 1.9)


def test_successes_grow_the_rate_by_one_a_second_up_to_the_learned_ceiling() -> None:
    clock = Clock()
    paced = limiter(clock)
    paced.throttled(answer_429(throttle_message(10)), sent_at=clock.now)  # 9.5
    clock.now += 0.25
    paced.throttled(answer_429(throttle_message(10)), sent_at=clock.now)  # at the ceiling: halved
    assert paced.rate == 4.75
    rates = []
    for _ in range(7):
        clock.now += 0.5
        paced.succeeded()
        rates.append(paced.rate)
    assert rates == [5.25, 5.75, 6.25, 6.75, 7.25, 7.75, 8.25]
    clock.now += 5.0  # a quiet spell grows it by one second's worth at most
    paced.succeeded()
    assert paced.rate == 9.25
    clock.now += 1.0
    paced.succeeded()
    assert paced.rate == 9.5
    clock.now += 10.0
    paced.succeeded()
    assert paced.rate == 9.5


def test_paced_requests_go_one_interval_apart_and_not_past_the_deadline() -> None:
    clock = Clock()
    paced = limiter(clock, rate_limit=4.0)
    assert [paced.acquire(101.0) for _ in range(4)] == [100.0, 100.25, 100.5, 100.75]
    assert clock.sleeps == [0.25, 0.25, 0.25]
    with pytest.raises(ThrottleTimedOut) as caught:
        paced.acquire(101.0)  # its turn is at 101.0: the deadline
    assert (caught.value.wait, caught.value.rate, clock.sleeps) == (
        "the account's pace would make the request wait 0.2s", 4.0, [0.25, 0.25, 0.25])
    assert paced.stats().waited == 0.75


# -- the account-wide pause -------------------------------------------------------------------


def test_a_retry_after_of_2s_makes_another_threads_acquire_wait_2s() -> None:
    clock = Clock()
    paced = limiter(clock)
    paced.throttled(answer_429(throttle_message(10), retry_after="2"), sent_at=clock.now)
    went: List[float] = []
    other = threading.Thread(target=lambda: went.append(paced.acquire(200.0)))
    other.start()
    other.join()
    assert (went, clock.sleeps) == ([102.0], [2.0])


def test_a_thread_already_waiting_for_its_turn_waits_out_a_pause_that_comes_meanwhile() -> None:
    clock = Clock()
    asleep, wake = threading.Event(), threading.Event()

    def sleep(seconds: float) -> None:  # the test moves the clock while the thread sleeps
        clock.sleeps.append(seconds)
        asleep.set()
        wake.wait()
        wake.clear()

    paced = AccountLimiter("default", 1.0, clock=clock, sleep=sleep)
    assert paced.acquire(200.0) == 100.0
    went: List[float] = []
    waiting = threading.Thread(target=lambda: went.append(paced.acquire(200.0)))
    waiting.start()
    assert asleep.wait(10)  # waiting for its turn at 101.0
    asleep.clear()
    clock.now = 100.5
    paced.throttled(answer_429(retry_after="2"), sent_at=100.0)  # the account pauses until 102.5
    clock.now = 101.0
    wake.set()
    assert asleep.wait(10)  # woke at 101.0, found the pause: waits again
    clock.now = 102.5
    wake.set()
    waiting.join(10)
    assert (went, clock.sleeps, paced.rate) == ([102.5], [1.0, 1.5], 0.5)


# -- runs against the simulator's flow control ------------------------------------------------


def project_runs(db: Path, run_id: str) -> Dict[str, tuple]:
    return {pid: rest for pid, *rest in query(
        db, "select project_id, account, status, throttled, retries, error_code from workspace_images.project_runs "
            "where run_id = ?", [run_id])}


def test_six_projects_at_a_limit_of_5_a_second_all_load_and_the_throttled_are_counted(sim: Simulator, db: Path) -> None:
    for _ in range(6):
        sim.add_project("cn-north-4", images=150)  # two pages each
    sim.set_rate_limit(5)
    result = load(db, sim)
    assert result.exit_code == 0, result.failed
    throttled = sim.throttled()
    assert 1 <= throttled <= 8  # only requests sent before the first 429 came back: one per thread at most
    rows = project_runs(db, result.run_id)
    assert sorted(status for _, status, _, _, _ in rows.values()) == ["ok"] * 6
    assert sum(count for _, _, count, _, _ in rows.values()) == throttled
    assert sum(retries for _, _, _, retries, _ in rows.values()) == throttled  # a 429 sent again is the only retry
    stats = result.throttling["default"]
    assert (stats.throttled, stats.rate) == (throttled, 4.75)
    assert (f"0 retired, {throttled} retries, account default throttled {throttled} time"
            f"{'' if throttled == 1 else 's'}, waited {stats.waited:.1f}s, rate 4.8/s, ") in result.summary()
    assert sim.rate_stats() == {DEFAULT_DOMAIN: {"allowed": 12, "throttled": throttled}}


def test_rate_limit_at_the_gateways_limit_is_never_throttled(sim: Simulator, db: Path) -> None:
    for _ in range(6):
        sim.add_project("cn-north-4", images=150)
    sim.set_rate_limit(5)
    result = load(db, sim, rate_limit=5)
    assert result.exit_code == 0, result.failed
    assert sim.throttled() == 0
    assert sim.rate_stats() == {DEFAULT_DOMAIN: {"allowed": 12, "throttled": 0}}
    assert [count for _, _, count, _, _ in project_runs(db, result.run_id).values()] == [0] * 6
    assert result.throttling["default"].throttled == 0
    assert result.throttling["default"].rate == 5.0


def acme_settings(sim: Simulator, **extra: object) -> Dict[str, object]:
    account = sim.iam.account(ACME)
    return {"projects": targets(sim, ACME), "credentials": {"access_key": account.access_key,
                                                             "secret_key": account.secret_key}, **extra}


def test_a_project_fails_with_wi_throttled_when_its_turn_would_come_past_its_deadline(sim: Simulator, db: Path) -> None:
    slow = sim.add_project("cn-north-4", images=250)  # three pages
    sim.iam.add_account(ACME)
    sim.add_project("cn-east-3", images=120, account=ACME)
    sim.add_project("cn-east-3", images=30, account=ACME)
    sim.set_rate_limit(0.5, account=DEFAULT_DOMAIN)  # one request, then one every 2s
    result = load(db, sim, projects=targets(sim), project_timeout=1.5, iam_endpoint=sim.url,
                  accounts={ACME: acme_settings(sim)})
    assert result.exit_code == 1
    (failed,) = result.failed
    assert (failed["project_id"], failed["http_status"], failed["error_code"], failed["throttled"]) == (
        slow.project_id, 429, "WI.THROTTLED", 1)
    assert failed["error_msg"] == (
        "throttled 1 time (APIGW.0308: The throttling threshold has been reached: policy user over ratelimit,"
        "limit:0.5,time:1 second), waited 0s, last at 0.5 requests/s; the next request would wait 2s more, past the project's time")
    rows = project_runs(db, result.run_id)
    assert sorted((account, status, count) for account, status, count, _, _ in rows.values()) == [
        ("acme", "ok", 0), ("acme", "ok", 0), ("default", "failed", 1)]
    assert sim.rate_stats() == {DEFAULT_DOMAIN: {"allowed": 1, "throttled": 1}, ACME: {"allowed": 3, "throttled": 0}}


def test_two_accounts_with_limits_of_their_own_load_side_by_side(sim: Simulator, tmp_path: Path) -> None:
    for _ in range(4):
        sim.add_project("cn-north-4", images=150)
    sim.iam.add_account(ACME)
    for _ in range(4):
        sim.add_project("cn-east-3", images=150, account=ACME)
    sim.set_rate_limit(6, account=DEFAULT_DOMAIN)
    sim.set_rate_limit(4, account=ACME)
    env = {"SOURCES__WORKSPACE_IMAGES__IAM_ENDPOINT": sim.url,
           "SOURCES__WORKSPACE_IMAGES__ACCOUNTS": json.dumps({ACME: acme_settings(sim)})}
    proc = cli([*run_args(sim), "--json"], tmp_path, extra_env=env)
    assert proc.returncode == 0, proc.stderr
    summary = json.loads(proc.stdout)
    stats = sim.rate_stats()
    assert {name: counts["allowed"] for name, counts in stats.items()} == {DEFAULT_DOMAIN: 8, ACME: 8}
    by_account = dict(query(tmp_path / "x.duckdb", "select account, sum(throttled) from workspace_images.project_runs "
                                                   "group by 1"))
    assert by_account == {"default": stats[DEFAULT_DOMAIN]["throttled"], "acme": stats[ACME]["throttled"]}
    throttled = {name: (account["throttled"], account["rate"], sum(account["projects"].values()))
                 for name, account in summary.get("throttled", {}).items()}
    expected = {name: (count, rate, count) for name, count, rate in (
        ("default", by_account["default"], 5.7), ("acme", by_account["acme"], 3.8)) if count}
    assert throttled == expected
    assert summary["retries"] == by_account["default"] + by_account["acme"]


def test_turns_go_to_the_account_with_fewest_projects_in_flight_then_fewest_taken() -> None:
    turns = AccountTurns(["default", "default", "default", "acme", "acme"])
    assert [turns.take() for _ in range(3)] == [0, 3, 1]
    turns.done(0)  # one in flight each; acme has taken fewer
    assert turns.take() == 4
    assert turns.take() == 2  # only default has projects left


def test_a_free_thread_takes_a_project_of_the_account_it_fetches_least_so_accounts_go_side_by_side(
        sim: Simulator, db: Path) -> None:
    default = [sim.add_project("cn-north-4", images=30) for _ in range(3)]
    sim.iam.add_account(ACME)
    acme = [sim.add_project("cn-east-3", images=30, account=ACME) for _ in range(2)]
    result = load(db, sim, projects=targets(sim), concurrency=1, iam_endpoint=sim.url,
                  accounts={ACME: acme_settings(sim)})
    assert result.exit_code == 0, result.failed
    asked = [r.project_id for r in sim.requests if r.project_id is not None]
    assert asked == [p.project_id for p in (default[0], acme[0], default[1], acme[1], default[2])]


def test_rate_limit_per_account_keeps_each_account_under_its_gateway_limit(sim: Simulator, db: Path) -> None:
    for _ in range(3):
        sim.add_project("cn-north-4", images=150)
    sim.iam.add_account(ACME)
    for _ in range(3):
        sim.add_project("cn-east-3", images=150, account=ACME)
    sim.set_rate_limit(5, account=DEFAULT_DOMAIN)
    sim.set_rate_limit(3, account=ACME)
    result = load(db, sim, projects=targets(sim), rate_limit=5, iam_endpoint=sim.url,
                  accounts={ACME: acme_settings(sim, rate_limit=3)})
    assert result.exit_code == 0, result.failed
    assert sim.rate_stats() == {DEFAULT_DOMAIN: {"allowed": 6, "throttled": 0}, ACME: {"allowed": 6, "throttled": 0}}
    assert {name: (stats.throttled, stats.rate) for name, stats in result.throttling.items()} == {
        "acme": (0, 3.0), "default": (0, 5.0)}


@pytest.mark.parametrize("value, message", [
    ("0", "rate_limit must be a number of requests a second above 0, got '0'"),
    ("-2.5", "rate_limit must be a number of requests a second above 0, got '-2.5'"),
    ("fast", "rate_limit must be a number of requests a second above 0, got 'fast'"),
    ("inf", "rate_limit must be a number of requests a second above 0, got 'inf'"),
])
def test_a_bad_rate_limit_exits_2(sim: Simulator, tmp_path: Path, value: str, message: str) -> None:
    sim.add_project("cn-north-4", images=5)
    proc = cli(run_args(sim), tmp_path, extra_env={"SOURCES__WORKSPACE_IMAGES__RATE_LIMIT": value})
    assert proc.returncode == 2, proc.stderr
    assert one_line(proc.stderr) == f"workspace-images: error: {message}"


def test_a_bad_rate_limit_of_an_account_exits_2(sim: Simulator, tmp_path: Path) -> None:
    sim.add_project("cn-north-4", images=5)
    sim.iam.add_account(ACME)
    sim.add_project("cn-east-3", images=5, account=ACME)
    env = {"SOURCES__WORKSPACE_IMAGES__ACCOUNTS": json.dumps({ACME: acme_settings(sim, rate_limit=-1)})}
    proc = cli(run_args(sim), tmp_path, extra_env=env)
    assert proc.returncode == 2, proc.stderr
    assert one_line(proc.stderr) == (
        "workspace-images: error: account acme: rate_limit must be a number of requests a second above 0, got -1")


def test_unthrottled_runs_say_nothing_of_throttling(sim: Simulator, db: Path) -> None:
    sim.add_project("cn-north-4", images=150)
    result = load(db, sim)
    assert (result.exit_code, result.throttling, sim.throttled()) == (0, {}, 0)
    assert f", 0 retries, {result.seconds:.1f}s -> " in result.summary()
    assert [count for _, _, count, _, _ in project_runs(db, result.run_id).values()] == [0]
