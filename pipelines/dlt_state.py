"""One database, one state: which dlt state a run continues from, the working folder's or the database's."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import dlt
from dlt.common.destination.client import WithStateSync
from dlt.common.destination.exceptions import DestinationUndefinedEntity
from dlt.pipeline.state_sync import load_pipeline_state_from_destination

from .errors import RunFailed


def stored_state_hash(pipeline: dlt.Pipeline) -> Optional[str]:
    """The version hash of the latest dlt state the database holds of `pipeline`: that of its
    newest completed load, the one dlt's `sync_destination` restores; None when it holds none
    (a new database, or one never loaded). One small query, to be run inside `in_file`."""
    try:
        with pipeline.destination_client() as client:
            if not isinstance(client, WithStateSync):
                return None  # it keeps no dlt state (every SQL destination does); dlt's own sync skips it too
            state = load_pipeline_state_from_destination(pipeline.pipeline_name, client)
    except DestinationUndefinedEntity:
        return None  # no dataset, or no state table in it yet
    return state["_version_hash"] if state else None


def local_state_hash(pipeline: dlt.Pipeline) -> Optional[str]:
    """The version hash of the state in the working folder; None for a new folder (no schema yet:
    it never extracted, and its state is dlt's default one)."""
    if not pipeline.default_schema_name:
        return None
    return pipeline.state.get("_version_hash")


def mismatch(local: Optional[str], stored: Optional[str], workdir: Path, where: str) -> Optional[str]:
    """Why the working folder's state is not the database's (the words of the log line), or None
    when it is: then the run continues from it, as dlt would."""
    if local == stored:
        return None
    if stored is None:
        return f"{where} holds none (a new or emptied database)"
    if local is None:
        return f"the working folder {workdir} had none"
    return (f"the working folder {workdir} held another one (the database was loaded from elsewhere since, "
            "or this folder's last load did not reach it)")


def drop_working_state(pipeline: dlt.Pipeline) -> dlt.Pipeline:
    """Delete dlt's state, schemas and package records of `pipeline` (its folder
    `<pipelines_dir>/workspace_images`, nothing beside it), so that the next `sync_destination`
    takes the database's state whatever its version counter says.

    Raises:
        RunFailed: a load package is still pending (it would be lost), or the folder is a
            symbolic link (it would not be the folder that is emptied).
    """
    own = Path(pipeline.pipelines_dir) / pipeline.pipeline_name
    if Path(pipeline.working_dir) != own:
        raise RunFailed(f"dlt's working folder is {pipeline.working_dir}, not {own}: its state is not replaced")
    if own.is_symlink():
        raise RunFailed(f"dlt's working folder {own} is a symbolic link: its state cannot be replaced by the "
                        "database's; make it a folder and run again")
    if pipeline.has_pending_data:
        raise RunFailed(f"dlt's working folder {own} holds load packages not loaded yet: its state cannot be "
                        "replaced by the database's; run again to load them first")
    return pipeline.drop()
