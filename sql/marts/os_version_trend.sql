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
        min(as_of)::date as first_day,
        max(as_of)::date as last_day
    from project_runs

),

days as (

    select cast(series.day as date) as day
    from load_days, generate_series(first_day, last_day, interval '1 day') as series(day)

),

versions as (

    select
        project_id,
        coalesce(os_type, 'unknown') as os_type,
        coalesce(os_version, 'unknown') as os_version,
        valid_from::date as first_day,
        valid_to::date as gone_day
    from images

),

-- a version is present at the end of every day from the one it appeared on
-- to the day before the one it was retired on
events as (

    select project_id, os_type, os_version, first_day as day, 1 as delta from versions
    union all
    select project_id, os_type, os_version, gone_day as day, -1 as delta from versions
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
    from (select distinct project_id, os_type, os_version from versions) as version_keys
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
        on daily_deltas.project_id = project_days.project_id
        and daily_deltas.os_type = project_days.os_type
        and daily_deltas.os_version = project_days.os_version
        and daily_deltas.day = project_days.day

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
