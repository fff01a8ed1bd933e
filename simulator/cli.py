"""Command line for the simulator: ``python -m workspace_images.simulator`` or ``workspace-images simulator``."""

from __future__ import annotations

import argparse
import logging
import os
import signal
import threading
import time
from collections.abc import Sequence
from types import FrameType

from .identity import DEFAULT_ACCESS_KEY, DEFAULT_DOMAIN, DEFAULT_PASSWORD, DEFAULT_SECRET_KEY, DEFAULT_USER
from .server import Simulator
from .tokens import DEFAULT_TOKEN_TTL

LOGGER = logging.getLogger("workspace_images.simulator")

TOKEN_ENV = "WORKSPACE_SIMULATOR_TOKEN"
DEFAULT_TOKEN = "sim-token"


def _non_negative_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"{text} must be 0 or more")
    return value


def _non_negative_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not value >= 0:
        raise argparse.ArgumentTypeError(f"{text} must be 0 or more")
    return value


def _positive_float(text: str) -> float:
    value = _non_negative_float(text)
    if value == 0:
        raise argparse.ArgumentTypeError(f"{text} must be more than 0")
    return value


def _positive_int(text: str) -> int:
    value = _non_negative_int(text)
    if value == 0:
        raise argparse.ArgumentTypeError(f"{text} must be 1 or more")
    return value


def _rate(text: str) -> float:
    value = _non_negative_float(text)
    if value > 1:
        raise argparse.ArgumentTypeError(f"{text} must be between 0 and 1")
    return value


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the simulator's options to a parser.

    Args:
        parser: The parser (or sub-command parser) to extend.
    """
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default: %(default)s)")
    parser.add_argument("--port", type=_non_negative_int, default=0, help="port; 0 picks a free one (default: 0)")
    parser.add_argument("--projects", type=_non_negative_int, default=3, help="number of projects (default: 3)")
    parser.add_argument("--images", type=_non_negative_int, default=120,
                        help="images per project on day 0 (default: 120)")
    parser.add_argument("--seed", type=int, default=1, help="seed of all generated data and faults (default: 1)")
    parser.add_argument("--day", type=_non_negative_int, default=0, help="simulated day to serve (default: 0)")
    parser.add_argument("--latency-ms", type=_non_negative_float, default=0.0,
                        help="delay added to every request, in milliseconds (default: 0)")
    parser.add_argument("--fault-rate", type=_rate, default=0.0,
                        help="probability 0..1 that an images request fails with 429, 500, 503 "
                             "or a dropped connection (default: 0)")
    parser.add_argument("--token", default=os.environ.get(TOKEN_ENV, DEFAULT_TOKEN),
                        help=f"X-Auth-Token value to accept (default: ${TOKEN_ENV}, else {DEFAULT_TOKEN})")
    parser.add_argument("--access-key", default=DEFAULT_ACCESS_KEY,
                        help="AK of the default account, for SDK-HMAC-SHA256 signing (default: %(default)s)")
    parser.add_argument("--secret-key", default=DEFAULT_SECRET_KEY,
                        help="SK of the default account (default: %(default)s)")
    parser.add_argument("--user", default=DEFAULT_USER,
                        help="IAM user of the default account, for POST /v3/auth/tokens (default: %(default)s)")
    parser.add_argument("--password", default=DEFAULT_PASSWORD,
                        help="password of that IAM user (default: %(default)s)")
    parser.add_argument("--domain", default=DEFAULT_DOMAIN,
                        help="name of the default account (IAM domain) that owns the projects (default: %(default)s)")
    parser.add_argument("--token-ttl", type=_positive_float, default=DEFAULT_TOKEN_TTL, metavar="SECONDS",
                        help="lifetime of tokens issued by POST /v3/auth/tokens (default: %(default)g)")
    parser.add_argument("--rate-limit", type=_positive_float, default=None, metavar="N",
                        help="Workspace requests a second each account may send, like the API gateway's flow "
                             "control; more are answered 429 APIGW.0308 (default: no limit)")
    parser.add_argument("--burst", type=_positive_int, default=None, metavar="N",
                        help="requests an account may send at once after a quiet spell (default: the whole part "
                             "of --rate-limit, at least 1)")
    parser.add_argument("--no-retry-after", dest="retry_after", action="store_false",
                        help="answer throttled requests without a Retry-After header")


def build_simulator(args: argparse.Namespace) -> Simulator:
    """Create (not start) a simulator from parsed arguments.

    Args:
        args: Arguments parsed with :func:`add_arguments`.

    Returns:
        The simulator.

    Raises:
        SystemExit: ``--burst`` without ``--rate-limit`` (exit 1, with the message).
    """
    if args.burst is not None and args.rate_limit is None:
        raise SystemExit("error: --burst needs --rate-limit")
    return Simulator(
        projects=args.projects,
        images=args.images,
        seed=args.seed,
        day=args.day,
        latency_ms=args.latency_ms,
        fault_rate=args.fault_rate,
        token=args.token,
        host=args.host,
        port=args.port,
        access_key=args.access_key,
        secret_key=args.secret_key,
        user=args.user,
        password=args.password,
        domain=args.domain,
        token_ttl=args.token_ttl,
        rate_limit=args.rate_limit,
        burst=args.burst,
        retry_after=args.retry_after,
    )


def _describe_limit(sim: Simulator) -> str:
    """The rate limit in the start-up lines: ``rate limit 10/s per account (burst 10, with Retry-After)``."""
    limit = sim.rate_limit()
    if limit is None:
        return "no rate limit"
    answer = "with" if limit.retry_after else "without"
    return f"rate limit {limit.rate:g}/s per account (burst {limit.burst}, 429 {answer} Retry-After)"


def _stop_on_sigterm(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def serve(args: argparse.Namespace) -> int:
    """Serve the simulator until Ctrl-C (or SIGTERM).

    Prints the URL and the projects (``region:project_id``) to stdout, ready
    for ``workspace-images run --endpoint URL --project REGION:ID``.

    Args:
        args: Arguments parsed with :func:`add_arguments`.

    Returns:
        The exit code: 0.
    """
    sim = build_simulator(args).start()
    in_main_thread = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, _stop_on_sigterm) if in_main_thread else None
    try:
        for project in sim.projects:
            LOGGER.info("%s %s %d", project.region, project.project_id, len(sim.images(project.project_id)))
        fixed = sim.iam.fixed_token
        token = fixed if fixed == DEFAULT_TOKEN else f"the value of --token / ${TOKEN_ENV}"
        lines = [
            f"Workspace simulator listening on {sim.url}",
            (f"  seed {sim.seed}, day {sim.day}, latency {args.latency_ms:g} ms, fault rate {args.fault_rate:g}, "
             f"{_describe_limit(sim)}"),
            f"  send header X-Auth-Token: {token}",
            "Projects (region:project_id):",
            *(f"  {p.region}:{p.project_id}" for p in sim.projects),
        ]
        if sim.projects:
            first = sim.projects[0]
            lines.append(f"Try: workspace-images run --endpoint {sim.url} --project {first.region}:{first.project_id}")
        account = sim.iam.account()
        lines += [
            f"IAM on the same URL (fake simulator credentials), account (domain) {account.domain}:",
            (f"  user {account.user}, password {account.password}: POST {sim.url}/v3/auth/tokens, "
             f"tokens live {sim.iam.token_ttl:g} s"),
            f"  AK {account.access_key}, SK {account.secret_key}: SDK-HMAC-SHA256 signing",
            "  projects: GET /v3/auth/projects (token) or GET /v3/projects (AK/SK)",
            "Press Ctrl-C to stop.",
        ]
        print("\n".join(lines), flush=True)
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        sim.stop()
        if in_main_thread:
            signal.signal(signal.SIGTERM, previous)
    return 0


def main(argv: Sequence[str] | None = None, prog: str | None = None) -> int:
    """Entry point of ``python -m workspace_images.simulator``.

    Args:
        argv: Arguments; ``sys.argv[1:]`` when None.
        prog: The command's name in its usage line; argparse's own when None.

    Returns:
        The exit code.
    """
    parser = argparse.ArgumentParser(prog=prog, description="Serve a local Huawei Cloud Workspace images API.")
    add_arguments(parser)
    parser.add_argument("--log-level", default="INFO", help="logging level (default: INFO)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    return serve(args)
