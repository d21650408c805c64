-- Every bot the warehouse knows: those the bots table names, and those
-- that only appear in sessions (named NULL until a sync names them).
with named as (
    select bot_id, name as bot_name, description, status, default_language,
           created_on, source as name_source
    from {{ source('kore', 'bots') }}
),
seen as (
    select distinct bot_id from {{ source('kore', 'sessions') }}
    where bot_id is not null
)
select
    coalesce(n.bot_id, s.bot_id) as bot_id,
    n.bot_name,
    n.description as bot_description,
    n.status as bot_status,
    n.default_language,
    n.created_on as bot_created_at,
    n.name_source
from named n
full outer join seen s on s.bot_id = n.bot_id
