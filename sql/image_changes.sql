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
        lag(valid_from) over image_versions as previous_valid_from,
        lag(valid_to) over image_versions as previous_valid_to,
        lead(valid_from) over image_versions as next_valid_from,
    from images
    window image_versions as (partition by project_id, image_id order by valid_from)

),

added as (

    select valid_from as changed_at, project_id, image_id, region, image_name, os_version,
    from versions
    where previous_valid_to is null or previous_valid_to <> valid_from

),

removed as (

    select valid_to as changed_at, project_id, image_id, region, image_name, os_version,
    from versions
    where valid_to is not null and (next_valid_from is null or next_valid_from <> valid_to)

),

changed as (

    select
        valid_from as changed_at,
        project_id,
        image_id,
        region,
        image_name,
        os_version,
        previous_valid_from,
    from versions
    where previous_valid_to = valid_from

),

compared_versions as (

    select changed.changed_at, 'after' as side, images.*
    from images
    join changed
        on images.project_id = changed.project_id
        and images.image_id = changed.image_id
        and images.valid_from = changed.changed_at
    union all by name
    select changed.changed_at, 'before' as side, images.*
    from images
    join changed
        on images.project_id = changed.project_id
        and images.image_id = changed.image_id
        and images.valid_from = changed.previous_valid_from

),

-- every API column as text, loader and derived columns left out
version_values as (

    select
        project_id,
        image_id,
        changed_at,
        side,
        columns(* exclude (
            project_id, image_id, changed_at, side, region, fetched_at, row_hash,
            valid_from, valid_to, is_current, os_family, os_version_number
        ))::varchar,
    from compared_versions

),

-- one (column_name, column_value) row per API column of each compared version
column_values as (

    select *
    from version_values
    unpivot include nulls (
        column_value for column_name in (columns(* exclude (project_id, image_id, changed_at, side)))
    )

),

column_changes as (

    select
        project_id,
        image_id,
        changed_at,
        column_name,
    from column_values
    group by project_id, image_id, changed_at, column_name
    having max(column_value) filter (where side = 'before')
        is distinct from max(column_value) filter (where side = 'after')

),

changed_columns as (

    select
        project_id,
        image_id,
        changed_at,
        string_agg(column_name, ', ' order by column_name) as changed_columns,
    from column_changes
    group by project_id, image_id, changed_at

),

final as (

    select changed_at, project_id, image_id, 'added' as change, null::varchar as changed_columns,
        region, image_name, os_version,
    from added
    union all
    select changed.changed_at, changed.project_id, changed.image_id, 'changed' as change,
        changed_columns.changed_columns, changed.region, changed.image_name, changed.os_version,
    from changed
    left join changed_columns
        on changed_columns.project_id = changed.project_id
        and changed_columns.image_id = changed.image_id
        and changed_columns.changed_at = changed.changed_at
    union all
    select changed_at, project_id, image_id, 'removed' as change, null::varchar as changed_columns,
        region, image_name, os_version,
    from removed

)

select * from final
