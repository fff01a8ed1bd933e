-- sqlfluff:dialect:postgres
-- The macros of os_version.sql as PostgreSQL functions of text: the same parsing in
-- PostgreSQL's regular expressions (`~*` matches ignoring case, `\y` is a word boundary,
-- `regexp_match(...)[n]` extracts a group, NULL where DuckDB's regexp_extract gives '').
-- tests/test_postgres.py holds the two to the same results.

create or replace function analytics.os_family(os_version text) returns text
language sql immutable as $$
    select case
        when os_version is null or trim(os_version) = '' then null
        when os_version ~* '^\s*windows\s+server' then 'Windows Server'
        when os_version ~* '^\s*windows' then 'Windows'
        when os_version ~* '^\s*(huawei\s+cloud\s+euleros|hce)\y' then 'Huawei Cloud EulerOS'
        when os_version ~* '^\s*euleros' then 'EulerOS'
        when os_version ~* '^\s*openeuler' then 'openEuler'
        when os_version ~* '^\s*(uos|uniontech)' then 'UOS'
        when os_version ~* '^\s*(neo)?kylin' then 'Kylin'
        when os_version ~* '^\s*centos' then 'CentOS'
        when os_version ~* '^\s*ubuntu' then 'Ubuntu'
        when os_version ~* '^\s*debian' then 'Debian'
        else nullif((regexp_match(trim(os_version), '^([^\s0-9()\[\],;:]+)'))[1], '')
    end
$$;

create or replace function analytics.os_version_number(os_version text) returns text
language sql immutable as $$
    select nullif(
        upper((regexp_match(
            regexp_replace(coalesce(os_version, ''), '\y(32|64)\s*-?\s*bits?\y', '', 'gi'),
            '\y(v?[0-9]+(\.[0-9]+)*(\s*sp[0-9]+)?)\y',
            'i'
        ))[1]),
        ''
    )
$$;
