-- image_inventory: one row per current image; key (project_id, image_id).
-- Every image column, where it lives, when it was first seen and last changed, when
-- its project was last read whole, and whether that project's latest run failed.

with

images as (

    select * from analytics.stg_images

),

project_runs as (

    select * from analytics.stg_project_runs

),

current_images as (

    select * from images where is_current

),

image_history as (

    select
        project_id,
        image_id,
        min(valid_from) as first_seen_at,
    from images
    group by project_id, image_id

),

latest_runs as (

    select
        project_id,
        status as latest_status,
    from project_runs
    qualify row_number() over (partition by project_id order by as_of desc, started_at desc) = 1

),

last_ok_runs as (

    select
        project_id,
        max(as_of) as last_seen_at,
    from project_runs
    where status = 'ok'
    group by project_id

),

final as (

    select
        current_images.* exclude (row_hash, valid_from, valid_to, is_current),
        image_history.first_seen_at,
        current_images.valid_from as last_changed_at,
        last_ok_runs.last_seen_at,
        coalesce(latest_runs.latest_status = 'failed', false) as is_stale,
    from current_images
    left join image_history
        on image_history.project_id = current_images.project_id
        and image_history.image_id = current_images.image_id
    left join latest_runs
        on latest_runs.project_id = current_images.project_id
    left join last_ok_runs
        on last_ok_runs.project_id = current_images.project_id

)

select * from final
