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
    from versions
    where previous_valid_to = valid_from

),

-- for each version, which API columns differ from the version before
-- (loader and derived columns left out); one boolean column per API column
column_flags as (

    select
        project_id as flagged_project_id,
        image_id as flagged_image_id,
        valid_from as flagged_valid_from,
        lag(valid_to) over image_versions as flagged_previous_valid_to,
        columns(* exclude (
            project_id, image_id, account, region, fetched_at, row_hash,
            valid_from, valid_to, is_current, os_family, os_version_number
        )) is distinct from lag(columns(* exclude (
            project_id, image_id, account, region, fetched_at, row_hash,
            valid_from, valid_to, is_current, os_family, os_version_number
        ))) over image_versions,
    from images
    window image_versions as (partition by project_id, image_id order by valid_from)

),

column_changes as (

    select
        flagged_project_id as project_id,
        flagged_image_id as image_id,
        flagged_valid_from as changed_at,
        column_name,
    from (select * from column_flags where flagged_previous_valid_to = flagged_valid_from)
    unpivot (
        is_changed for column_name in (columns(* exclude (
            flagged_project_id, flagged_image_id, flagged_valid_from, flagged_previous_valid_to
        )))
    )
    where is_changed

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
