-- stg_images: one row per version of an image; key (project_id, image_id, valid_from).
-- Renames raw.images, keeps every API column (new ones included: `star` lists the columns
-- the table has) and derives os_family and os_version_number from os_version.

with

source as (

    select * from raw.images

),

renamed as (

    select
        id as image_id,
        star(raw.images, except => [id, _dlt_valid_from, _dlt_valid_to, _row_hash]),
        _row_hash as row_hash,
        _dlt_valid_from as valid_from,
        _dlt_valid_to as valid_to
    from source

),

final as (

    select
        *,
        analytics.os_family(os_version) as os_family,
        analytics.os_version_number(os_version) as os_version_number,
        valid_to is null as is_current
    from renamed

)

select * from final
