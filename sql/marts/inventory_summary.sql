-- inventory_summary: one row per region x project_id x os_type x image_type x architecture;
-- counts of current images.

with

inventory as (

    select * from analytics.image_inventory

),

final as (

    select
        region,
        project_id,
        os_type,
        image_type,
        architecture,
        count(*) as images,
        count(*) filter (where is_stale) as stale_images
    from inventory
    group by region, project_id, os_type, image_type, architecture

)

select * from final
