-- stg_project_runs: one row per project per run; key (run_id, project_id).
-- The run log of loads that dlt finished: a row whose load package is still pending
-- (a run killed or refused mid-load, tried again by the next run) or was aborted by
-- hand is left out, so it never vouches for images that did not land with it. The runner
-- reads the run log through this select too, before the models are built (history.py).

with

source as (

    select * from raw.project_runs

),

finished_loads as (

    select load_id from raw._dlt_loads
    where status = 0

),

final as (

    select source.*
    from source
    where source._dlt_load_id in (select finished_loads.load_id from finished_loads)

)

select * from final
