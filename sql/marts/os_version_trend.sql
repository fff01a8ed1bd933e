-- os_version_trend: one row per day x os_type x os_version, every day from the first load
-- to the last (UTC days). images: distinct images (project_id, image_id) present at the end of
-- the day; projects: projects holding at least one of them; images_change: against the day
-- before (NULL on the first day). Days with 0 images are kept so that drops to 0 show.

with

images as (

    select * from analytics.stg_images

),

project_runs as (

    select * from analytics.stg_project_runs

),

load_days as (

    select
        cast(min(as_of) as date) as first_day,
        cast(max(as_of) as date) as last_day
    from project_runs

),

days as (

    select cast(series.day as date) as day
    from load_days, generate_series(load_days.first_day, load_days.last_day, interval '1 day') as series (day)

),

versions as (

    select
        project_id,
        coalesce(os_type, 'unknown') as os_type,
        coalesce(os_version, 'unknown') as os_version,
        cast(valid_from as date) as first_day,
        cast(valid_to as date) as gone_day
    from images

),

-- a version is present at the end of every day from the one it appeared on
-- to the day before the one it was retired on
events as (

    select
        project_id,
        os_type,
        os_version,
        first_day as day,
        1 as delta
    from versions
    union all
    select
        project_id,
        os_type,
        os_version,
        gone_day as day,
        -1 as delta
    from versions
    where gone_day is not null

),

daily_deltas as (

    select
        project_id,
        os_type,
        os_version,
        day,
        sum(delta) as delta
    from events
    group by project_id, os_type, os_version, day

),

project_days as (

    select
        version_keys.project_id,
        version_keys.os_type,
        version_keys.os_version,
        days.day
    from (
        select distinct
            project_id,
            os_type,
            os_version
        from versions
    ) as version_keys
    cross join days

),

project_counts as (

    select
        project_days.project_id,
        project_days.os_type,
        project_days.os_version,
        project_days.day,
        sum(coalesce(daily_deltas.delta, 0)) over (
            partition by project_days.project_id, project_days.os_type, project_days.os_version
            order by project_days.day
        ) as images
    from project_days
    left join daily_deltas
        on project_days.project_id = daily_deltas.project_id
        and project_days.os_type = daily_deltas.os_type
        and project_days.os_version = daily_deltas.os_version
        and project_days.day = daily_deltas.day

),

daily as (

    select
        day,
        os_type,
        os_version,
        cast(sum(images) as bigint) as images,
        count(*) filter (where images > 0) as projects
    from project_counts
    group by day, os_type, os_version

),

final as (

    select
        day,
        os_type,
        os_version,
        images,
        projects,
        images - lag(images) over (partition by os_type, os_version order by day) as images_change
    from daily

)

select * from final
