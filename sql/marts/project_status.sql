-- project_status: one row per project that was ever run; key project_id.
-- Its latest run (when, ok or failed, the API's error), when it was last read whole,
-- whether its images are stale (its latest run failed) and how many are current.

with

project_runs as (

    select * from analytics.stg_project_runs

),

images as (

    select * from analytics.stg_images

),

ranked_runs as (

    select
        *,
        row_number() over (partition by project_id order by as_of desc, started_at desc) as run_rank
    from project_runs

),

latest_runs as (

    select
        project_id,
        region,
        account,
        project_name,
        run_id as latest_run_id,
        as_of as latest_as_of,
        status as latest_status,
        http_status,
        error_code,
        error_msg
    from ranked_runs
    where run_rank = 1

),

last_ok_runs as (

    select
        project_id,
        max(as_of) as last_ok_at
    from project_runs
    where status = 'ok'
    group by project_id

),

current_images as (

    select
        project_id,
        count(*) as current_images
    from images
    where is_current
    group by project_id

),

final as (

    select
        latest_runs.*,
        last_ok_runs.last_ok_at,
        latest_runs.latest_status = 'failed' as is_stale,
        coalesce(current_images.current_images, 0) as current_images
    from latest_runs
    left join last_ok_runs
        on latest_runs.project_id = last_ok_runs.project_id
    left join current_images
        on latest_runs.project_id = current_images.project_id

)

select * from final
