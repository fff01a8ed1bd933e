-- image_inventory: one row per current image; key (project_id, image_id).
-- Every image column, where it lives, when it was first seen and last changed, when
-- its project was last read whole, and whether that project's latest run failed
-- (both from project_status). `star` lists the columns stg_images has, new API fields included.

with

images as (

    select * from analytics.stg_images

),

project_status as (

    select * from analytics.project_status

),

current_images as (

    select * from images
    where is_current

),

image_history as (

    select
        project_id,
        image_id,
        min(valid_from) as first_seen_at
    from images
    group by project_id, image_id

),

final as (

    select
        star(analytics.stg_images, relation_alias => current_images,
             except => [row_hash, valid_from, valid_to, is_current]),
        image_history.first_seen_at,
        current_images.valid_from as last_changed_at,
        project_status.last_ok_at as last_seen_at,
        coalesce(project_status.is_stale, false) as is_stale
    from current_images
    left join image_history
        on current_images.project_id = image_history.project_id
        and current_images.image_id = image_history.image_id
    left join project_status
        on current_images.project_id = project_status.project_id

)

select * from final
