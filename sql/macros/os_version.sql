-- Parse Workspace os_version strings ("EulerOS 2.5 64bit", "Windows Server 2019 Datacenter 64bit",
-- "Ubuntu 22.04 server 64bit", "UOS 20 SP1 64bit", "Kylin V10 SP2 64bit") into a family and a version.
-- Kept as macros so BI users can apply the same parsing in their own queries.

create or replace macro analytics.os_family(os_version) as (
    case
        when os_version is null or trim(os_version) = '' then null
        when regexp_matches(os_version, '^\s*windows\s+server', 'i') then 'Windows Server'
        when regexp_matches(os_version, '^\s*windows', 'i') then 'Windows'
        when regexp_matches(os_version, '^\s*(huawei\s+cloud\s+euleros|hce)\b', 'i') then 'Huawei Cloud EulerOS'
        when regexp_matches(os_version, '^\s*euleros', 'i') then 'EulerOS'
        when regexp_matches(os_version, '^\s*openeuler', 'i') then 'openEuler'
        when regexp_matches(os_version, '^\s*(uos|uniontech)', 'i') then 'UOS'
        when regexp_matches(os_version, '^\s*(neo)?kylin', 'i') then 'Kylin'
        when regexp_matches(os_version, '^\s*centos', 'i') then 'CentOS'
        when regexp_matches(os_version, '^\s*ubuntu', 'i') then 'Ubuntu'
        when regexp_matches(os_version, '^\s*debian', 'i') then 'Debian'
        else nullif(regexp_extract(trim(os_version), '^([^\s0-9()\[\],;:]+)', 1), '')
    end
);

create or replace macro analytics.os_version_number(os_version) as (
    nullif(
        upper(regexp_extract(
            regexp_replace(coalesce(os_version, ''), '\b(32|64)\s*-?\s*bits?\b', '', 'gi'),
            '\b(v?[0-9]+(\.[0-9]+)*(\s*sp[0-9]+)?)\b',
            1,
            'i'
        )),
        ''
    )
);
