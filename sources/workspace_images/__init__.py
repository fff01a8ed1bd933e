"""workspace-images: an inventory, with history, of Huawei Cloud Workspace product images, loaded by dlt.

The package's parts, one folder each: the dlt source's modules here (`workspace_images.source`
is the source and its resources), `workspace_images.pipelines` (the runner, the CLI, the
Airflow DAG, the report), `workspace_images.simulator` (the Workspace and IAM stand-in) and
`workspace_images.sql` (the models). Nothing is imported here, so that Airflow parsing the DAG
file (`workspace_images.pipelines.airflow_dag`) imports neither dlt nor DuckDB.
"""
