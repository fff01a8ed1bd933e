"""The runner, the command line, the Airflow DAG and the report: what runs the dlt source and reads what it loaded."""
