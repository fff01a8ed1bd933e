"""IAM's directory: the accounts, their permanent AKs, and IAM's view of every project.

The tokens (:mod:`simulator.tokens`), the gateway (:mod:`simulator.gateway`)
and the listings (:mod:`simulator.listings`) read it through its public
methods; :class:`~simulator.iam.IdentityStore` composes them.
"""

from __future__ import annotations

import random
import string
import threading
from collections.abc import Callable

from .identity import DEFAULT_PASSWORD, DEFAULT_SECRET_KEY, DEFAULT_USER, MOS_PROJECT, IamProject, SimAccount


def _hex_id(seed: int, *parts: object) -> str:
    return f"{random.Random(':'.join(map(str, (seed, *parts)))).getrandbits(128):032x}"


class Accounts:
    """The accounts (IAM domains) with their users and AK/SKs, and the projects IAM knows.

    Every public method takes the lock.

    Args:
        seed: Seed of generated IDs and default keys.
        lock: The lock shared with the simulator.
    """

    def __init__(self, seed: int, lock: threading.RLock) -> None:
        self.seed = seed
        self._lock = lock
        self._accounts: dict[str, SimAccount] = {}
        self._by_access_key: dict[str, SimAccount] = {}
        self._projects: dict[str, IamProject] = {}

    def add_account(
        self,
        domain: str,
        user: str | None = None,
        password: str | None = None,
        access_key: str | None = None,
        secret_key: str | None = None,
        *,
        key_taken: Callable[[str], bool] = lambda access_key: False,
    ) -> SimAccount:
        """Create an account (IAM domain) with its user, AK/SK and ``MOS`` project.

        Args:
            domain: The account (domain) name; unique.
            user: The user name (default ``sim-user``).
            password: The password (default ``sim-password``).
            access_key: The AK; unique (default ``SIMACCESSKEY`` and a
                10-digit account number, the first account's being
                :data:`~simulator.identity.DEFAULT_ACCESS_KEY`).
            secret_key: The SK (default :data:`~simulator.identity.DEFAULT_SECRET_KEY`
                for the first account, a seeded 40-character key for the others).
            key_taken: Whether an AK is in use elsewhere (a temporary AK),
                asked under the lock.

        Returns:
            The account.

        Raises:
            ValueError: The domain is empty or taken, or the AK is in use.
        """
        if not domain or not domain.strip():
            raise ValueError("domain must not be empty")
        with self._lock:
            if domain in self._accounts:
                raise ValueError(f"account {domain} already exists")
            number = len(self._accounts) + 1
            if secret_key is None:
                if number == 1:
                    secret_key = DEFAULT_SECRET_KEY
                else:
                    rng = random.Random(f"{self.seed}:secret-key:{domain}")
                    secret_key = "SimSecretKey" + "".join(
                        rng.choice(string.ascii_letters + string.digits) for _ in range(28))
            account = SimAccount(
                domain=domain,
                domain_id=_hex_id(self.seed, "domain", domain),
                user=user or DEFAULT_USER,
                user_id=_hex_id(self.seed, "user", domain),
                password=password or DEFAULT_PASSWORD,
                access_key=access_key or f"SIMACCESSKEY{number:010d}",
                secret_key=secret_key,
                mos_project_id=_hex_id(self.seed, "mos", domain),
            )
            if account.access_key in self._by_access_key or key_taken(account.access_key):
                raise ValueError(f"access key {account.access_key} is already in use")
            self._accounts[domain] = account
            self._by_access_key[account.access_key] = account
            self._projects[account.mos_project_id] = IamProject(account.mos_project_id, MOS_PROJECT, domain, None)
            return account

    @property
    def accounts(self) -> list[SimAccount]:
        """The accounts in creation order, the default one first."""
        with self._lock:
            return list(self._accounts.values())

    def account(self, domain: str | None = None) -> SimAccount:
        """Return an account.

        Args:
            domain: Its domain name; the default account when None.

        Raises:
            KeyError: No such account.
        """
        with self._lock:
            if domain is None:
                return next(iter(self._accounts.values()))
            try:
                return self._accounts[domain]
            except KeyError:
                raise KeyError(f"unknown account {domain}") from None

    def find_account(self, domain: str) -> SimAccount | None:
        """Return the account of that domain name, or None."""
        with self._lock:
            return self._accounts.get(domain)

    def account_with_key(self, access_key: str) -> SimAccount | None:
        """Return the account whose permanent AK that is, or None."""
        with self._lock:
            return self._by_access_key.get(access_key)

    def account_of(self, project_id: str) -> SimAccount:
        """Return the account a project (Workspace or ``MOS``) belongs to.

        Raises:
            KeyError: No such project.
        """
        with self._lock:
            project = self._projects.get(project_id)
            if project is None:
                raise KeyError(f"unknown project {project_id}")
            return self._accounts[project.domain]

    def project(self, project_id: str) -> IamProject | None:
        """Return the IAM view of a project, or None when unknown."""
        with self._lock:
            return self._projects.get(project_id)

    def projects(self, domain: str) -> list[IamProject]:
        """Return an account's projects, ``MOS`` included, in creation order."""
        with self._lock:
            return [p for p in self._projects.values() if p.domain == domain]

    def project_name(self, region: str, domain: str, name: str | None) -> str:
        """Check or choose the IAM name of a new Workspace project.

        Args:
            region: The project's region.
            domain: Its account.
            name: The wanted name, or None for ``region`` when the account has
                no project of that name yet, else ``{region}_teamN``.

        Returns:
            The name.

        Raises:
            ValueError: The name is taken in the account, is ``MOS``, or is
                neither the region nor ``{region}_{suffix}``.
        """
        with self._lock:
            taken = {p.name for p in self._projects.values() if p.domain == domain}
            if name is None:
                if region not in taken:
                    return region
                in_region = sum(1 for p in self._projects.values() if p.domain == domain and p.region == region)
                name = f"{region}_team{in_region}"
                while name in taken:
                    in_region += 1
                    name = f"{region}_team{in_region}"
                return name
            if name == MOS_PROJECT or not (name == region or (name.startswith(region + "_") and
                                                                len(name) > len(region) + 1)):
                raise ValueError(f"project name {name!r} must be {region!r} or {region!r}_SUFFIX")
            if name in taken:
                raise ValueError(f"account {domain} already has a project named {name}")
            return name

    def register_project(self, project_id: str, name: str, domain: str, region: str, enabled: bool) -> None:
        """Add a Workspace project to IAM.

        Args:
            project_id: Its ID.
            name: Its name (see :meth:`project_name`).
            domain: Its account.
            region: Its region.
            enabled: Whether it is enabled.
        """
        with self._lock:
            if project_id in self._projects:
                raise ValueError(f"project {project_id} already exists")
            self.account(domain)
            self._projects[project_id] = IamProject(project_id, name, domain, region, enabled)

    def set_enabled(self, project_id: str, enabled: bool) -> None:
        """Enable or disable a project (``MOS`` projects included).

        Raises:
            KeyError: No such project.
        """
        with self._lock:
            try:
                self._projects[project_id].enabled = enabled
            except KeyError:
                raise KeyError(f"unknown project {project_id}") from None
