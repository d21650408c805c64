-- Session tags of live sessions, one row per tag.
select
    t.session_id,
    t.kind as tag_kind,
    t.ordinal as tag_ordinal,
    t.name as tag_name,
    t.value as tag_value,
    t.value_json as tag_value_json
from {{ source('kore', 'session_tags') }} t
where exists (
    select 1 from {{ source('kore', 'sessions') }} s
    where s.session_id = t.session_id and s.deleted_at is null
)
