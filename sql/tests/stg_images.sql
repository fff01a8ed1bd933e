-- Data tests of stg_images: each query returns the offending rows; none means it passes.

-- test: unique key (project_id, image_id, valid_from)
select project_id, image_id, valid_from, count(*) as versions
from analytics.stg_images
group by project_id, image_id, valid_from
having count(*) > 1;

-- test: not null keys
select * from analytics.stg_images
where project_id is null or image_id is null or region is null or valid_from is null;

-- test: at most one current version per image
select project_id, image_id, count(*) as current_versions
from analytics.stg_images
where is_current
group by project_id, image_id
having count(*) > 1;

-- test: versions of an image do not overlap
select project_id, image_id, valid_from, valid_to, next_valid_from
from (
    select *, lead(valid_from) over (partition by project_id, image_id order by valid_from) as next_valid_from
    from analytics.stg_images
)
where next_valid_from is not null and (valid_to is null or valid_to > next_valid_from);

-- test: a version ends after it begins
select project_id, image_id, valid_from, valid_to
from analytics.stg_images
where valid_to <= valid_from;
