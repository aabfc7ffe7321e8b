"""Statements of the hot paths, each written out once per process from model metadata: compiled by
the ORM on every request they cost more CPU than the database spends on them. Only quoted
identifiers from model metadata go into the text; every value is a parameter."""

import functools

from django.db import connections, router


@functools.cache
def _insert_statement(model, alias):
    quote = connections[alias].ops.quote_name
    # What the database fills in itself (an auto-increment id) is left to it.
    fields = [field for field in model._meta.concrete_fields if not getattr(field, "db_returning", False)]
    columns = ", ".join(quote(field.column) for field in fields)
    values = ", ".join(["%s"] * len(fields))
    return f"INSERT INTO {quote(model._meta.db_table)} ({columns}) VALUES ({values})", fields  # noqa: S608  # nosec B608: quoted model identifiers, values are parameters


def insert(instance):
    """Store a new row, as ``instance.save(force_insert=True)`` would but in a statement written
    once: no ORM compilation, no ``pre_save``/``post_save`` signals, and a database-made id is not
    read back. For rows written on every grant that nothing else listens for."""
    model = type(instance)
    connection = connections[router.db_for_write(model)]
    statement, fields = _insert_statement(model, connection.alias)
    params = [field.get_db_prep_save(field.pre_save(instance, True), connection) for field in fields]
    with connection.cursor() as cursor:
        cursor.execute(statement, params)
    return instance
