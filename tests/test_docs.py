"""The docs run: every snippet of README.md and docs/ is executed against the simulator, or listed.

Each fenced block is taken by its language:
- `sh`: run with bash in a temp folder of its own, `.venv` linked into it and the venv's bin on
  PATH, the source pointed at the simulator of this module (SOURCES__WORKSPACE_IMAGES__ENDPOINT,
  ..._IAM_ENDPOINT). Unless the snippet makes its own settings (`init`) or its own account (it
  starts a `simulator`), the folder holds the `.dlt/` of a user who followed "Loading your own
  account": the docs' example projects and their AK/SK, which this module's simulator holds.
- `toml`: parsed with tomllib, written into `.dlt/` (where its `# .dlt/...` comments say, else
  credentials into secrets.toml and the rest into config.toml) and a run made from it; projects
  or credentials the snippet does not give come from flags and the environment.
- `python`: run in a subprocess in a temp folder, with the same environment as `sh`.
- `sql`: each statement run against one DuckDB file loaded from the simulator over three days.
- `text` (output, layouts) is shown, not run; `cron` and every snippet that needs what a test
  cannot have (sudo, a real account or server, an Airflow install) are in NOT_RUN with why.

Where the docs write a value for a reader (a fixed port, the id the simulator prints, /data/),
`substitutions` names the value a test uses instead.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Dict, Iterator, List, Optional, Tuple

import duckdb
import pytest

from tools import docs as docgen
from workspace_images.pipelines.models import descriptions
from workspace_images.pipelines.runner import RunResult, run
from workspace_images.simulator import Simulator
from tests.helpers import free_port
from tests.snippets import ALL, FENCE, FILES, ROOT, Snippet, bash, substitute, wait_after_background

VENV_BIN = Path(sys.executable).parent

# The account the docs' examples use, held by this module's simulator so they run as written.
DOCS_PROJECTS = ["cn-north-4:0605767e1f00d5c32f55c0137fb2b1d7", "ap-southeast-1:1b2c3d4e5f60718293a4b5c6d7e8f901"]
DOCS_ACCOUNT = dict(access_key="HPUA...", secret_key="...", user="etl-reader", password="...",
                    domain="my-account", token="MIIZ...")
BASE_CONFIG = f'[sources.workspace_images]\nprojects = {DOCS_PROJECTS!r}\n'.replace("'", '"')
BASE_SECRETS = '[sources.workspace_images.credentials]\naccess_key = "HPUA..."\nsecret_key = "..."\n'

# A snippet is named by its file and its first line. Why each one that is not run is not:
NOT_RUN: Dict[Tuple[str, str], str] = {
    ("README.md", "make demo    # set up, load 7 simulated days into demo.duckdb, print the report, draw demo_report.html"):
        "make targets install packages (apt-get as root); the demo is tested in test_cli.py, the suite is this",
    ("README.md", "python3 -m venv ~/workspace-images && ~/workspace-images/bin/pip install /path/to/workspace-images   # or a built wheel"):
        "a new venv and a pip install of the package: test_wheel.py does it",
    ("docs/configuration.md", "# .dlt/config.toml"):
        "several accounts (finance, retail) with their own credentials: test_accounts.py plays them",
    ("docs/scheduling.md", "15 6 * * * cd /srv/workspace-images && .venv/bin/workspace-images -q run --db /data/images.duckdb --json --log-file /var/log/workspace-images.log >> /var/log/workspace-images.jsonl"):
        "a crontab line",
    ("docs/scheduling.md", "15 6 * * * cd /srv/workspace-images && .venv/bin/workspace-images -q run --json --log-file /var/log/workspace-images.log >> /var/log/workspace-images.jsonl"):
        "a crontab line, into PostgreSQL",
    ("docs/scheduling.md", "python3 -m venv ~/airflow-venv && ~/airflow-venv/bin/pip install 'apache-airflow==3.3.2' /path/to/workspace-images"):
        "installs Airflow: make test-integration does",
    ("docs/scheduling.md", "DAGS=$(~/airflow-venv/bin/airflow config get-value core dags_folder) && mkdir -p \"$DAGS\""):
        "needs an Airflow install: make test-integration plays it",
    ("docs/scheduling.md", "mkdir -p \"$DAGS/.dlt\""):
        "needs an Airflow install: make test-integration plays it",
    ("docs/scheduling.md", "~/airflow-venv/bin/airflow db migrate          # a new Airflow home only"):
        "needs an Airflow install: make test-integration plays it",
    ("docs/destinations.md", "sudo apt-get install postgresql                       # Debian's server, if you have none"):
        "sudo and a PostgreSQL server: test_postgres.py loads a real one",
    ("docs/destinations.md", "# .dlt/config.toml"):
        "a PostgreSQL server: test_postgres.py loads a real one",
}


# Earlier snippets a snippet goes on from, in the same folder (a TOML block's files, a shell
# block's exports): "Loading your own account" is three steps.
STEPS: Dict[Tuple[str, str], List[Tuple[str, str]]] = {
    ("README.md", ".venv/bin/workspace-images run"): [
        ("README.md", "[sources.workspace_images]"),
        ("README.md", 'export SOURCES__WORKSPACE_IMAGES__CREDENTIALS__ACCESS_KEY="HPUA..."'),
    ],
}


RUNNABLE = [s for s in ALL if s.lang not in ("text", "cron") and s.key not in NOT_RUN]


def by_key(key: Tuple[str, str]) -> Snippet:
    return next(s for s in ALL if s.key == key)


def marks(snippet: Snippet) -> pytest.param:
    return pytest.param(snippet, id=str(snippet))


@pytest.fixture(scope="module")
def docs_sim() -> Iterator[Simulator]:
    """The account of the docs' examples: their two projects, their credentials."""
    with Simulator(projects=0, seed=5, **DOCS_ACCOUNT) as sim:
        for target in DOCS_PROJECTS:
            region, project_id = target.split(":")
            sim.add_project(region, images=30, project_id=project_id)
        yield sim


@pytest.fixture(scope="module")
def loaded_db(docs_sim: Simulator, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One DuckDB file with three simulated days of the docs' projects, for the SQL snippets."""
    folder = tmp_path_factory.mktemp("loaded")
    db = folder / "images.duckdb"
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("DLT_DATA_DIR", str(folder / "dlt_data"))
        for day in range(3):
            docs_sim.set_day(day)
            result = run_load(db, docs_sim, day, db.parent / "pipelines")
            assert result.exit_code == 0
    return db


def run_load(db: Path, sim: Simulator, day: int, pipelines_dir: Optional[Path] = None) -> RunResult:
    """A run of the docs' projects as of the simulator's `day` (dlt's working folder beside `db` when None)."""
    return run(db, projects=DOCS_PROJECTS, endpoint=sim.url, token=DOCS_ACCOUNT["token"], as_of=sim.as_of(day),
               pipelines_dir=pipelines_dir)


def environment(folder: Path, sim: Simulator) -> Dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SOURCES__WORKSPACE_IMAGES__")}
    env.update(PATH=f"{VENV_BIN}:{env['PATH']}", HOME=str(folder), DLT_DATA_DIR=str(folder / "dlt_data"),
               SOURCES__WORKSPACE_IMAGES__ENDPOINT=sim.url, SOURCES__WORKSPACE_IMAGES__IAM_ENDPOINT=sim.url)
    return env


def write_toml(folder: Path, text: str) -> None:
    """A TOML snippet into `.dlt/`: the files its `# .dlt/...` comments name, else by what it holds."""
    tomllib.loads(text)
    (folder / ".dlt").mkdir(exist_ok=True)
    parts = re.split(r"^# (\.dlt/\w+\.toml)\n", text, flags=re.M)
    chunks = [(parts[i], parts[i + 1]) for i in range(1, len(parts), 2)] if len(parts) > 1 else \
        [(".dlt/secrets.toml" if ".credentials]" in text else ".dlt/config.toml", text)]
    for name, chunk in chunks:
        tomllib.loads(chunk)
        with open(folder / name, "a", encoding="utf-8") as out:
            out.write(chunk)


def lay_base(folder: Path) -> None:
    write_toml(folder, f"# .dlt/config.toml\n{BASE_CONFIG}# .dlt/secrets.toml\n{BASE_SECRETS}")


def prepare(folder: Path, snippet: Snippet, sim: Simulator) -> str:
    """Lay the folder for a snippet; return the shell lines its earlier steps leave to it."""
    (folder / ".venv").symlink_to(VENV_BIN.parent)
    (folder / "data").mkdir()
    if "/data/" in snippet.text and "duckdb-storage-version" not in snippet.text:
        result = run_load(folder / "data" / "images.duckdb", sim, sim.day)
        assert result.exit_code == 0
    steps = STEPS.get(snippet.key, [])
    own = "workspace-images init" in snippet.text or "workspace-images simulator" in snippet.text
    if not own and not any(by_key(k).lang == "toml" for k in steps):
        lay_base(folder)
    exports = ""
    for key in steps:
        step = by_key(key)
        if step.lang == "toml":
            write_toml(folder, step.text)
        else:
            exports += step.text
    if steps and not (folder / ".dlt" / "secrets.toml").exists() and "CREDENTIALS" not in exports:
        write_toml(folder, "# .dlt/secrets.toml\n" + BASE_SECRETS)
    return exports


@pytest.mark.parametrize("snippet", [marks(s) for s in RUNNABLE if s.lang == "sh"])
def test_shell_snippet(snippet: Snippet, docs_sim: Simulator, tmp_path: Path) -> None:
    port = free_port()
    exports = prepare(tmp_path, snippet, docs_sim)
    script = wait_after_background(substitute(exports + snippet.text, tmp_path, port), port)
    proc = bash(script, tmp_path, environment(tmp_path, docs_sim))
    assert proc.returncode == 0, f"{snippet}\n{script}\nstdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"
    assert "Traceback" not in proc.stderr, proc.stderr


@pytest.mark.parametrize("snippet", [marks(s) for s in RUNNABLE if s.lang == "toml"])
def test_toml_snippet(snippet: Snippet, docs_sim: Simulator, tmp_path: Path) -> None:
    write_toml(tmp_path, snippet.text)
    settings = tomllib.loads(snippet.text).get("sources", {}).get("workspace_images", {})
    args = ["run", "--db", "images.duckdb", "--no-models"]
    if not {"projects", "discover_projects", "accounts"} & set(settings):
        args += [a for target in DOCS_PROJECTS for a in ("--project", target)]
    if "credentials" not in settings:
        write_toml(tmp_path, "# .dlt/secrets.toml\n" + BASE_SECRETS)
    env = environment(tmp_path, docs_sim)
    proc = subprocess.run([str(VENV_BIN / "workspace-images"), *args], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, f"{snippet}\n{proc.stderr}"
    assert re.match(r"run \w+ as of .*: \d+/\d+ projects ok", proc.stdout), proc.stdout


@pytest.mark.parametrize("snippet", [marks(s) for s in RUNNABLE if s.lang == "python"])
def test_python_snippet(snippet: Snippet, docs_sim: Simulator, tmp_path: Path) -> None:
    prepare(tmp_path, snippet, docs_sim)
    env = environment(tmp_path, docs_sim)
    env.update(SOURCES__WORKSPACE_IMAGES__CREDENTIALS__ACCESS_KEY="HPUA...",
               SOURCES__WORKSPACE_IMAGES__CREDENTIALS__SECRET_KEY="...")
    code = substitute(snippet.text, tmp_path, free_port())
    proc = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, f"{snippet}\n{proc.stderr}"


def sql_statements() -> List[pytest.param]:
    params = []
    for snippet in (s for s in RUNNABLE if s.lang == "sql"):
        for number, statement in enumerate(s for s in snippet.text.split(";\n") if s.strip()):
            params.append(pytest.param(statement, id=f"{snippet}#{number + 1}"))
    return params


@pytest.mark.parametrize("statement", sql_statements())
def test_sql_snippet(statement: str, loaded_db: Path) -> None:
    with duckdb.connect(str(loaded_db), read_only=True) as con:
        con.execute(statement).fetchall()


def test_every_snippet_is_run_or_listed() -> None:
    """Every block has a language, and the lists name snippets that exist, once each."""
    untagged = [str(s) for s in ALL if not s.lang]
    assert not untagged, f"fenced blocks without a language: {untagged}"
    unknown = sorted({s.lang for s in ALL} - {"sh", "toml", "python", "sql", "text", "cron"})
    assert not unknown, f"blocks in languages this test does not run: {unknown}"
    keys = [s.key for s in ALL]
    for key in [*NOT_RUN, *STEPS, *(k for steps in STEPS.values() for k in steps)]:
        if key[1].startswith("cli "):
            assert key[1] in docgen.blocks((ROOT / key[0]).read_text(encoding="utf-8")), key
            continue
        assert keys.count(key) == 1, f"listed, but {keys.count(key)} snippets start so: {key}"


def test_generated_cli_reference_matches_the_parser() -> None:
    text = (ROOT / "docs" / "cli.md").read_text(encoding="utf-8")
    present = docgen.blocks(text)
    parts = docgen.generators()
    assert sorted(set(parts) - set(present)) == [], "run `make docs` and place the new blocks"
    for name, make in parts.items():
        assert present[name] == make(), f"docs/cli.md block {name!r} is stale: run `make docs`"


def test_every_generated_block_has_its_command() -> None:
    present = docgen.blocks((ROOT / "docs" / "cli.md").read_text(encoding="utf-8"))
    assert sorted(set(present) - set(docgen.generators())) == []


def anchors(text: str) -> List[str]:
    """GitHub's anchors of a Markdown text's headings."""
    seen: Dict[str, int] = {}
    result = []
    body = FENCE.sub("", text)
    for heading in re.findall(r"^#{1,6} (.+)$", body, flags=re.M):
        slug = re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")
        count = seen.get(slug, 0)
        seen[slug] = count + 1
        result.append(slug if count == 0 else f"{slug}-{count}")
    return result


@pytest.mark.parametrize("path", FILES, ids=lambda p: str(p.relative_to(ROOT)))
def test_links_resolve(path: Path) -> None:
    text = FENCE.sub("", path.read_text(encoding="utf-8"))
    broken = []
    for target in re.findall(r"\]\(([^)\s]+)\)", text):
        if re.match(r"[a-z]+:", target):
            continue
        file, _, anchor = target.partition("#")
        goal = (path.parent / file).resolve() if file else path
        if not goal.exists():
            broken.append(target)
        elif anchor and goal.suffix == ".md" and anchor not in anchors(goal.read_text(encoding="utf-8")):
            broken.append(target)
    assert broken == []


def documented_columns() -> Dict[str, set]:
    """The columns each table section of docs/tables.md lists in its first column table."""
    text = (ROOT / "docs" / "tables.md").read_text(encoding="utf-8")
    tables = {}
    for name, section in re.findall(r"^### `(\w+\.\w+)`\n(.*?)(?=^#{1,3} |\Z)", text, flags=re.M | re.S):
        rows = re.findall(r"^\| (.+?) \|", section.split("| column |", 1)[1], flags=re.M)
        tables[name] = {c for row in rows for c in re.findall(r"`(\w+)`", row)}
    return tables


def test_tables_doc_lists_every_table_and_column(loaded_db: Path) -> None:
    """docs/tables.md against the descriptions beside the models (and sql/sources.toml) and the
    columns a real load has, both ways."""
    described = {name: set(cols) - {"table"} for name, cols in descriptions().items() if name != "common"}
    documented = documented_columns()
    assert sorted(documented) == sorted(described)
    with duckdb.connect(str(loaded_db), read_only=True) as con:
        real = {}
        for schema, table, column in con.execute(
                "select table_schema, table_name, column_name from information_schema.columns "
                "where table_schema in ('workspace_images', 'analytics')").fetchall():
            real.setdefault(f"{schema}.{table}", set()).add(column)
    for name, columns in documented.items():
        assert columns == real[name], f"{name}: docs only {columns - real[name]}, database only {real[name] - columns}"
        assert described[name] <= columns, f"{name}: described but not documented {described[name] - columns}"


def test_the_readme_is_a_front_page_with_a_map_of_every_doc() -> None:
    """At most about 250 lines, opening with the two commands, and a link to every file of docs/."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert len(readme.splitlines()) <= 250
    assert readme.startswith("# workspace-images\n\n```sh\nmake demo")
    linked = set(re.findall(r"\]\((docs/[\w.-]+\.md)(?:#[\w-]+)?\)", readme))
    assert sorted(linked) == sorted(f"docs/{p.name}" for p in (ROOT / "docs").glob("*.md"))


def test_the_module_map_names_every_module() -> None:
    """docs/architecture.md's layout is the one module map: every module of the code, the
    benchmarks and the tools is named there."""
    text = (ROOT / "docs" / "architecture.md").read_text(encoding="utf-8")
    layout = text[text.index("## Layout"):]
    layout = layout[layout.index("```text"):]
    layout = layout[: layout.index("```", len("```text"))]
    missing = [
        f"{folder}/{path.name}"
        for folder in ("pipelines", "pipelines/reporting", "sources/workspace_images", "simulator", "bench", "tools")
        for path in sorted((ROOT / folder).glob("*.py"))
        if path.stem not in ("__init__", "__main__") and not re.search(rf"\b{path.stem}\b", layout)
    ]
    assert missing == []
