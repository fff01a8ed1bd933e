"""Seeded image data for the Workspace simulator, and how it evolves day by day.

Every project's catalogue is a pure function of ``(seed, project_index, day)``:
day 0 holds the initial images, and each later day withdraws about 3 % of them,
publishes about 4 % new ones and changes about 2 % (a rename, a new minimum
disk, or an OS upgrade such as Windows 10 to Windows 11), so loads over several
days show real OS-version trends. Day ``d`` is computed by replaying days
``0..d``; :class:`ProjectHistory` caches the replay so that visiting days in
any order gives the same data.

Images are plain dicts serialised exactly as the API returns them::

    {"id": "0b9f...", "image_type": "gold", "os_type": "Windows",
     "os_version": "Windows 10 Enterprise 64bit", "disk_format": "zvhd2",
     "name": "Windows10_企业版_办公_042", "min_ram": 0, "min_disk": 80,
     "product_code": "workspace.x86.windows10", "architecture": "x86",
     "created_at": "2025-03-05T10:22:11Z"}
"""

from __future__ import annotations

import datetime as dt
import random
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

Image = dict[str, Any]

DEFAULT_REGIONS = ("cn-north-4", "cn-east-3", "cn-south-1", "ap-southeast-1", "ap-southeast-3")
"""Regions projects are spread over when none are given."""

WITHDRAW_RATE = 0.03
PUBLISH_RATE = 0.04
CHANGE_RATE = 0.02
GOLD_SHARE = 0.7
ARM_SHARE = 0.3
PUBLISH_BASE_MIN = 10
"""A project smaller than this still publishes as if it had this many images."""

HISTORY_DAYS = 730
"""Initial images were created up to this many days before the start date."""

PUBLISH_HOURS = 12
"""Images published on a simulated day are created before this UTC hour."""

MIN_DISKS_SMALL = (40, 50, 60, 80, 100)
MIN_DISKS_LARGE = (120, 200, 256, 500, 1024)
MIN_RAMS = (2048, 4096)
GOLD_DISK_FORMATS = ("zvhd2", "qcow2")
GOLD_DISK_FORMAT_WEIGHTS = (8, 2)
PRIVATE_DISK_FORMATS = ("vhd", "raw", "qcow2", "zvhd2")
PURPOSES = (
    "办公",
    "研发",
    "客服",
    "教学",
    "Développeur",
    "Büro",
    "テスト",
    "Finance",
    "Design",
    "Sales",
    "Call_Center",
    "Dev",
)
CREATED_AT_FORMATS = (
    ("%Y-%m-%dT%H:%M:%SZ", 80),
    ("%Y-%m-%dT%H:%M:%S.000Z", 10),
    ("%Y-%m-%d %H:%M:%S", 10),
)


@dataclass(frozen=True)
class OsRelease:
    """One OS version Workspace offers images of.

    Attributes:
        os_type: ``Linux``, ``Windows`` or ``Other``.
        os_version: The exact ``os_version`` string the API returns.
        code: The OS part of a product code (``workspace.x86.<code>``).
        stem: The start of image names built on this release.
        arm: Whether arm images of this release exist.
        initial_weight: Relative share among the images of day 0.
        new_weight: Relative share among images published later.
        successor: The ``os_version`` an image of this release is upgraded to.
    """

    os_type: str
    os_version: str
    code: str
    stem: str
    arm: bool
    initial_weight: int
    new_weight: int
    successor: str | None = None


RELEASES: dict[str, OsRelease] = {
    release.os_version: release
    for release in (
        OsRelease("Windows", "Windows 10 Enterprise 64bit", "windows10", "Windows10_企业版", False, 22, 5,
                  "Windows 11 Enterprise 64bit"),
        OsRelease("Windows", "Windows 11 Enterprise 64bit", "windows11", "Windows11_企业版", False, 6, 20),
        OsRelease("Windows", "Windows Server 2016 Datacenter 64bit", "windowsserver2016", "WinServer2016_数据中心",
                  False, 8, 1, "Windows Server 2019 Datacenter 64bit"),
        OsRelease("Windows", "Windows Server 2019 Datacenter 64bit", "windowsserver2019", "WinServer2019_Datacenter",
                  False, 8, 5, "Windows Server 2022 Datacenter 64bit"),
        OsRelease("Windows", "Windows Server 2022 Datacenter 64bit", "windowsserver2022", "WinServer2022_Datacenter",
                  False, 3, 8),
        OsRelease("Linux", "EulerOS 2.5 64bit", "euleros25", "EulerOS_欧拉", True, 8, 2, "EulerOS 2.9 64bit"),
        OsRelease("Linux", "EulerOS 2.9 64bit", "euleros29", "EulerOS_欧拉", True, 3, 7),
        OsRelease("Linux", "Ubuntu 20.04 server 64bit", "ubuntu2004", "Ubuntu_Développeur", True, 8, 3,
                  "Ubuntu 22.04 server 64bit"),
        OsRelease("Linux", "Ubuntu 22.04 server 64bit", "ubuntu2204", "Ubuntu_Développeur", True, 3, 8),
        OsRelease("Linux", "CentOS 7.6 64bit", "centos76", "CentOS_Desktop", False, 6, 0, "EulerOS 2.9 64bit"),
        OsRelease("Linux", "UOS 20 SP1 64bit", "uos20sp1", "UOS_统信桌面", True, 5, 2, "UOS 20 SP2 64bit"),
        OsRelease("Linux", "UOS 20 SP2 64bit", "uos20sp2", "UOS_统信桌面", True, 2, 5),
        OsRelease("Linux", "Kylin V10 SP1 64bit", "kylinv10sp1", "Kylin_麒麟", True, 5, 2, "Kylin V10 SP2 64bit"),
        OsRelease("Linux", "Kylin V10 SP2 64bit", "kylinv10sp2", "Kylin_麒麟", True, 2, 5),
        OsRelease("Other", "Other 64bit", "other", "Custom_カスタム", False, 1, 1),
    )
}
"""Every OS release, keyed by ``os_version``. ``Other`` images are private only."""


def project_id_for(seed: int, project_index: int) -> str:
    """Return the project ID of a project: 32 lowercase hex digits, like Huawei's.

    Args:
        seed: The simulator's seed.
        project_index: The project's position among the simulator's projects.

    Returns:
        The project ID.
    """
    return f"{random.Random(f'{seed}:project:{project_index}').getrandbits(128):032x}"


def _day_rng(seed: int, project_index: int, day: int) -> random.Random:
    return random.Random(f"{seed}:{project_index}:{day}")


def _stochastic_round(rng: random.Random, value: float) -> int:
    whole = int(value)
    return whole + (1 if rng.random() < value - whole else 0)


def _format_created_at(rng: random.Random, moment: dt.datetime) -> str:
    formats, weights = zip(*CREATED_AT_FORMATS)
    return moment.strftime(rng.choices(formats, weights)[0])


def _unique_name(rng: random.Random, stem: str, taken: set[str]) -> str:
    attempt = 0
    while True:
        upper = 10 ** (3 + attempt // 10) - 1
        name = f"{stem}_{rng.choice(PURPOSES)}_{rng.randint(1, upper):03d}"
        if name not in taken:
            taken.add(name)
            return name
        attempt += 1


def _product_code(release: OsRelease, architecture: str) -> str:
    return f"workspace.{architecture}.{release.code}"


def new_image(rng: random.Random, created_on: dt.date, taken_names: set[str], *, initial: bool = False) -> Image:
    """Generate one image.

    Args:
        rng: The random source; the image depends only on its state.
        created_on: The UTC date of ``created_at``. Initial images are created
            before this date instead, up to :data:`HISTORY_DAYS` earlier.
        taken_names: Names already used in the project; the new name is added.
        initial: Whether the image belongs to day 0, which favours older
            releases and dates the image in the past.

    Returns:
        The image: every ImageInfo field the simulator serves, in the order it serves them.
    """
    image_type = "gold" if rng.random() < GOLD_SHARE else "private"
    releases = [r for r in RELEASES.values() if image_type == "private" or r.os_type != "Other"]
    weights = [r.initial_weight if initial else r.new_weight for r in releases]
    release = rng.choices(releases, weights)[0]
    architecture = "arm" if release.arm and rng.random() < ARM_SHARE else "x86"
    if image_type == "gold":
        disk_format = rng.choices(GOLD_DISK_FORMATS, GOLD_DISK_FORMAT_WEIGHTS)[0]
        product_code = _product_code(release, architecture)
    else:
        disk_format = rng.choice(PRIVATE_DISK_FORMATS)
        product_code = "" if rng.random() < 0.6 else _product_code(release, architecture)
    if initial:
        day = created_on - dt.timedelta(days=rng.randint(1, HISTORY_DAYS))
        seconds = rng.randrange(86400)
    else:
        day = created_on
        seconds = rng.randrange(PUBLISH_HOURS * 3600)
    moment = dt.datetime.combine(day, dt.time()) + dt.timedelta(seconds=seconds)
    return {
        "id": str(uuid.UUID(int=rng.getrandbits(128), version=4)),
        "image_type": image_type,
        "os_type": release.os_type,
        "os_version": release.os_version,
        "disk_format": disk_format,
        "name": _unique_name(rng, release.stem, taken_names),
        "min_ram": 0 if rng.random() < 0.8 else rng.choice(MIN_RAMS),
        "min_disk": rng.choice(MIN_DISKS_SMALL) if rng.random() < 0.9 else rng.choice(MIN_DISKS_LARGE),
        "product_code": product_code,
        "architecture": architecture,
        "created_at": _format_created_at(rng, moment),
    }


def initial_images(seed: int, project_index: int, images: int, start_date: dt.date) -> list[Image]:
    """Return the images of a project on day 0.

    Args:
        seed: The simulator's seed.
        project_index: The project's position among the simulator's projects.
        images: How many images the project has on day 0.
        start_date: The date of day 0.

    Returns:
        ``images`` images, in publication order.
    """
    rng = _day_rng(seed, project_index, 0)
    taken: set[str] = set()
    return [new_image(rng, start_date, taken, initial=True) for _ in range(images)]


def _changed(rng: random.Random, image: Image, taken_names: set[str]) -> Image:
    changed = dict(image)
    release = RELEASES.get(image["os_version"])
    options = ["name", "min_disk"]
    if release is not None and release.successor is not None:
        options += ["os_version", "os_version"]
    what = rng.choice(options)
    if what == "os_version":
        successor = RELEASES[release.successor]
        changed["os_version"] = successor.os_version
        if changed["product_code"]:
            changed["product_code"] = _product_code(successor, changed["architecture"])
    elif what == "name":
        taken_names.discard(image["name"])
        stem = release.stem if release is not None else image["name"].split("_", 1)[0]
        changed["name"] = _unique_name(rng, stem, taken_names)
    else:
        disks = [d for d in MIN_DISKS_SMALL + MIN_DISKS_LARGE if d != image["min_disk"]]
        changed["min_disk"] = rng.choice(disks)
    return changed


def evolve(images: list[Image], seed: int, project_index: int, day: int, start_date: dt.date) -> list[Image]:
    """Return the images of the day after ``images``.

    The input list and its dicts are not modified; unchanged images are the
    same dict objects in the result, so callers must copy before mutating.

    Args:
        images: The project's images on day ``day - 1``.
        seed: The simulator's seed.
        project_index: The project's position among the simulator's projects.
        day: The day to compute (1 or later).
        start_date: The date of day 0.

    Returns:
        The project's images on ``day``, in publication order.
    """
    rng = _day_rng(seed, project_index, day)
    count = len(images)
    withdrawn = set(rng.sample(range(count), min(count, _stochastic_round(rng, count * WITHDRAW_RATE))))
    kept = [image for i, image in enumerate(images) if i not in withdrawn]
    taken = {image["name"] for image in kept}
    for i in rng.sample(range(len(kept)), min(len(kept), _stochastic_round(rng, count * CHANGE_RATE))):
        kept[i] = _changed(rng, kept[i], taken)
    published = _stochastic_round(rng, max(count, PUBLISH_BASE_MIN) * PUBLISH_RATE)
    created_on = start_date + dt.timedelta(days=day)
    return kept + [new_image(rng, created_on, taken) for _ in range(published)]


def created_at_key(value: Any) -> str:
    """Return a sort key for a ``created_at`` string in any of its formats.

    ``2025-03-05T10:22:11Z``, ``2025-03-05T10:22:11.000Z`` and
    ``2025-03-05 10:22:11`` all become ``2025-03-0510:22:11``.

    Args:
        value: The ``created_at`` value.

    Returns:
        A string that sorts in time order.
    """
    text = str(value or "")
    return text[:10] + text[11:19]


def sort_images(images: Iterable[Image], field: str = "name", descending: bool = False) -> list[Image]:
    """Sort images the way the API does: by ``field``, ties broken by ``id`` ascending.

    An image without ``field`` sorts as if it were ``""``. One whose value is
    not a string (null, a number, an object, ...) cannot be compared: those
    come last in either direction, by ``id``.

    Args:
        images: The images.
        field: ``name`` or ``created_at``.
        descending: Whether to sort ``field`` in descending order.

    Returns:
        A new list of the same dicts.
    """
    by_id = sorted(images, key=lambda image: str(image.get("id", "")))
    result = [image for image in by_id if isinstance(image.get(field, ""), str)]
    odd = [image for image in by_id if not isinstance(image.get(field, ""), str)]
    if field == "created_at":
        result.sort(key=lambda image: created_at_key(image.get(field)), reverse=descending)
    else:
        result.sort(key=lambda image: image.get(field, ""), reverse=descending)
    return result + odd


class ProjectHistory:
    """The day-by-day images of one project, replayed from its seed and cached.

    Args:
        seed: The simulator's seed.
        project_index: The project's position among the simulator's projects.
        images: How many images the project has on its day 0.
        start_date: The date of the project's day 0.
    """

    def __init__(self, seed: int, project_index: int, images: int, start_date: dt.date) -> None:
        if images < 0:
            raise ValueError(f"images must be >= 0, got {images}")
        self.seed = seed
        self.project_index = project_index
        self.start_date = start_date
        self._days: list[list[Image]] = [initial_images(seed, project_index, images, start_date)]

    def day(self, day: int) -> list[Image]:
        """Return the project's images on ``day``, as fresh copies in publication order.

        Args:
            day: The day (0 or later).

        Returns:
            Copies of the images, safe to mutate.
        """
        if day < 0:
            raise ValueError(f"day must be >= 0, got {day}")
        while len(self._days) <= day:
            self._days.append(
                evolve(self._days[-1], self.seed, self.project_index, len(self._days), self.start_date)
            )
        return [dict(image) for image in self._days[day]]


def generate_day(seed: int, project_index: int, images: int, day: int, start_date: dt.date) -> list[Image]:
    """Return a project's images on a day, in the API's default order (name, then id).

    A pure function: the simulator serves exactly this for a project created
    with the same arguments (before any live mutation or extra fields).

    Args:
        seed: The simulator's seed.
        project_index: The project's position among the simulator's projects.
        images: How many images the project has on day 0.
        day: The day (0 or later).
        start_date: The date of day 0.

    Returns:
        The images, as new dicts.
    """
    return sort_images(ProjectHistory(seed, project_index, images, start_date).day(day))
