{#- A key of several columns holds no duplicate: one failing row per
    duplicated combination. dbt's built-in `unique` takes one column, and
    the package needs no other package. -#}
{% test unique_combination(model, columns) %}
select {{ columns | join(', ') }}, count(*) as n_rows
from {{ model }}
group by {{ columns | join(', ') }}
having count(*) > 1
{% endtest %}
