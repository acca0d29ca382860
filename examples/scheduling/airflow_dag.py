"""Airflow DAG: the nightly report as a BashOperator calling `workbench report`.

The workbench already runs its notebooks with papermill, keeps run folders, a lock and a
`latest` pointer, so Airflow only schedules it and reads the exit code (2 bad input,
3 notebook failed, 4 lock held). Copy into your DAGs folder and adjust the paths.
"""

from datetime import datetime

from airflow import DAG
from airflow.operators.bash import BashOperator

WORKBENCH = "/opt/ticket-workbench"
REPORT_COMMAND = (
    f"cd {WORKBENCH} && .venv/bin/workbench report --data /data/exports/tickets_{{{{ ds_nodash }}}}.csv "
    "--name airflow-{{ ds_nodash }} --param reference_run=latest --keep 30 --quiet"
)

with DAG(
    dag_id="ticket_classifier_report",
    schedule="30 2 * * *",
    start_date=datetime(2026, 1, 1),
    catchup=False,
    max_active_runs=1,
    tags=["ml", "tickets"],
) as dag:
    BashOperator(
        task_id="workbench_report",
        bash_command=REPORT_COMMAND,
        env={"HF_HUB_OFFLINE": "1"},
        append_env=True,
    )
