-- image_changes: one row per change of an image; key (project_id, image_id, changed_at).
-- change: 'added' (first seen, or back after a withdrawal), 'removed' (withdrawn), 'changed'
-- (a new version); changed_columns: the API columns whose value differs from the version
-- before, comma-separated, for 'changed' rows. region, image_name and os_version describe the
-- image after the change (before it, for 'removed').

with

images as (

    select * from analytics.stg_images

),

versions as (

    select
        project_id,
        image_id,
        region,
        name as image_name,
        os_version,
        valid_from,
        valid_to,
        lag(valid_to) over image_versions as previous_valid_to,
        lead(valid_from) over image_versions as next_valid_from,
        -- the API columns (every column of stg_images but the loader's and the derived ones)
        -- whose value differs from the version before, by name; NULL when none does
        changed_columns(analytics.stg_images, image_versions, except => [
            project_id, image_id, account, region, fetched_at, row_hash,
            valid_from, valid_to, is_current, os_family, os_version_number
        ]) as changed_columns
    from images
    window image_versions as (partition by project_id, image_id order by valid_from)

),

added as (

    select
        valid_from as changed_at,
        project_id,
        image_id,
        region,
        image_name,
        os_version
    from versions
    where previous_valid_to is null or previous_valid_to <> valid_from

),

removed as (

    select
        valid_to as changed_at,
        project_id,
        image_id,
        region,
        image_name,
        os_version
    from versions
    where valid_to is not null and (next_valid_from is null or next_valid_from <> valid_to)

),

changed as (

    select
        valid_from as changed_at,
        project_id,
        image_id,
        changed_columns,
        region,
        image_name,
        os_version
    from versions
    where previous_valid_to = valid_from

),

final as (

    select
        changed_at,
        project_id,
        image_id,
        'added' as change,
        cast(null as varchar) as changed_columns,
        region,
        image_name,
        os_version
    from added
    union all
    select
        changed_at,
        project_id,
        image_id,
        'changed' as change,
        changed_columns,
        region,
        image_name,
        os_version
    from changed
    union all
    select
        changed_at,
        project_id,
        image_id,
        'removed' as change,
        cast(null as varchar) as changed_columns,
        region,
        image_name,
        os_version
    from removed

)

select * from final
