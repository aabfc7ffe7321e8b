"""Statements of the hot paths, each written out once per process from model metadata: compiled by
the ORM on every request they cost more CPU than the database spends on them. Only quoted
identifiers from model metadata go into the text; every value is a parameter."""

import functools
import weakref
from contextlib import contextmanager
from contextvars import ContextVar

from django.db import connections, router
from django.db.models import Model
from django.db.models.query import get_related_populators
from django.db.models.signals import post_save, pre_save


@functools.cache
def _insert_statement(model, alias, read_pk=False):
    connection = connections[alias]
    quote = connection.ops.quote_name
    # What the database fills in itself (an auto-increment id) is left to it.
    fields = [field for field in model._meta.concrete_fields if not getattr(field, "db_returning", False)]
    columns = ", ".join(quote(field.column) for field in fields)
    values = ", ".join(["%s"] * len(fields))
    statement = f"INSERT INTO {quote(model._meta.db_table)} ({columns}) VALUES ({values})"  # noqa: S608  # nosec B608: quoted model identifiers, values are parameters
    returning = read_pk and connection.features.can_return_columns_from_insert
    if returning:
        statement += f" RETURNING {quote(model._meta.pk.column)}"
    return statement, fields, returning


def insert(instance, *, read_pk=False):
    """Store a new row, as ``instance.save(force_insert=True)`` would but in a statement written
    once: no ORM compilation and no ``pre_save``/``post_save`` signals (fields' own ``pre_save``
    still runs). ``read_pk``: read a database-made id back into the instance. For rows written on
    every grant that nothing else listens for (``unheard``). Inside ``written_together`` the row
    waits for the block's end."""
    model = type(instance)
    connection = connections[router.db_for_write(model)]
    statement, fields, returning = _insert_statement(model, connection.alias, read_pk)
    # Fields' own pre_save now, whenever the row is written: DOT computes a token's checksum there.
    params = [field.get_db_prep_save(field.pre_save(instance, True), connection) for field in fields]
    waiting = _together.get()
    if waiting is not None and waiting[0] is connection:
        waiting[1].append((instance, dict(zip((field.name for field in fields), params, strict=True))))
        return instance
    with connection.cursor() as cursor:
        cursor.execute(statement, params)
        if read_pk:
            instance.pk = cursor.fetchone()[0] if returning else cursor.lastrowid
    instance._state.adding, instance._state.db = False, connection.alias
    return instance


def unheard(model):
    """Whether saving a ``model`` row may skip ``Model.save``: nothing listens for its signals and
    the model does not override ``save`` (a swapped token model may)."""
    return model.save is Model.save and not (pre_save.has_listeners(model) or post_save.has_listeners(model))


# Stand-ins for a lookup's values while the ORM writes its statement (text: client ids, checksums);
# no real value contains NUL characters.
_STAND_INS = tuple(f"\x00ropc-lookup-value-{number}\x00" for number in range(4))


class Lookup:
    """A SELECT the ORM writes once per database connection, then runs with new values: for a
    select_related lookup on every request, compiling the SQL cost more CPU than the database
    spent answering it. ``build(*values)`` returns the QuerySet; its text values are stood in for
    while it is compiled. Rows come back as the ORM makes them: converters applied, related objects
    and annotations set."""

    def __init__(self, model, build, arity=1):
        self._model, self._build, self._arity = model, build, arity
        # Per connection (connections are per thread): a compiler is not shared between threads.
        self._compiled = weakref.WeakKeyDictionary()

    def _compile(self, connection):
        queryset = self._build(*_STAND_INS[: self._arity])
        compiler = queryset.query.get_compiler(connection=connection)
        sql, params = compiler.as_sql()
        slots = [_STAND_INS.index(param) if param in _STAND_INS else None for param in params]
        if sorted(slot for slot in slots if slot is not None) != list(range(self._arity)):
            # A value the ORM transformed (or used twice) cannot be stood in for: a bug of ours.
            raise ValueError(f"Each value of a Lookup must appear once, as given, in: {sql}")
        klass_info, select = compiler.klass_info, compiler.select
        fields = klass_info["select_fields"]
        compiled = {
            "compiler": compiler,
            "sql": sql,
            "params": params,
            "slots": slots,
            "model": klass_info["model"],
            "span": (fields[0], fields[-1] + 1),
            "init_list": [column[0].target.attname for column in select[fields[0] : fields[-1] + 1]],
            "annotations": dict(compiler.annotation_col_map),
            "related": get_related_populators(klass_info, select, connection.alias),
        }
        self._compiled[connection] = compiled
        return compiled

    def first(self, *values):
        """The first row for these values, or None (the query's own ordering decides)."""
        connection = connections[router.db_for_read(self._model)]
        compiled = self._compiled.get(connection) or self._compile(connection)
        params = [
            param if slot is None else values[slot]
            for param, slot in zip(compiled["params"], compiled["slots"], strict=True)
        ]
        with connection.cursor() as cursor:
            cursor.execute(compiled["sql"], params)
            row = cursor.fetchone()
        if row is None:
            return None
        row = next(iter(compiled["compiler"].results_iter([[row]])))
        start, end = compiled["span"]
        instance = compiled["model"].from_db(connection.alias, compiled["init_list"], row[start:end])
        for populator in compiled["related"]:
            populator.populate(row, instance)
        for name, position in compiled["annotations"].items():
            setattr(instance, name, row[position])
        return instance


# -- rows written together ----------------------------------------------------------------------------

_together: ContextVar = ContextVar("ropc_written_together", default=None)


@contextmanager
def written_together(model):
    """The rows ``insert`` stores inside this block, written at its end in one statement where the
    database can (PostgreSQL: data-modifying WITH clauses), each database-made id read back: a
    sign-in's token pair, session and event are one round trip, not four. A row whose foreign key
    holds an earlier row of the block refers to it in the statement. Elsewhere rows are written
    as they come."""
    connection = connections[router.db_for_write(model)]
    if connection.vendor != "postgresql" or _together.get() is not None:
        yield
        return
    rows = []
    token = _together.set((connection, rows))
    try:
        yield
    finally:
        _together.reset(token)
    _write_together(connection, rows)


def _write_together(connection, waiting):
    if not waiting:
        return
    rows = [row for row, _ in waiting]
    # Which earlier row each row's foreign keys hold (objects assigned before that row had an id).
    refers = []
    for row in rows:
        refer = {}
        for field in type(row)._meta.concrete_fields:
            if field.is_relation and field.is_cached(row):
                target = field.get_cached_value(row)
                earlier = next((number for number, other in enumerate(rows) if other is target), None)
                if earlier is not None:
                    refer[field.name] = earlier
        refers.append(tuple(sorted(refer.items())))
    statement, fields_of = _together_statement(connection.alias, tuple(type(row) for row in rows), tuple(refers))
    params = []
    for (_, prepped), fields, refer in zip(waiting, fields_of, refers, strict=True):
        referring = dict(refer)
        params += [prepped[field.name] for field in fields if field.name not in referring]
    with connection.cursor() as cursor:
        cursor.execute(statement, params)
        ids = cursor.fetchone()
    for row, refer, pk in zip(rows, refers, ids, strict=True):
        row.pk = pk
        for name, earlier in refer:
            setattr(row, type(row)._meta.get_field(name).attname, rows[earlier].pk)
        row._state.adding, row._state.db = False, connection.alias


@functools.cache
def _together_statement(alias, models, refers):
    quote = connections[alias].ops.quote_name
    clauses, fields_of = [], []
    for number, (model, refer) in enumerate(zip(models, refers, strict=True)):
        referring = dict(refer)
        fields = [field for field in model._meta.concrete_fields if not getattr(field, "db_returning", False)]
        values = [_id_of(quote, models, referring[field.name]) if field.name in referring else "%s" for field in fields]
        columns = ", ".join(quote(field.column) for field in fields)
        clauses.append(
            f"row{number} AS (INSERT INTO {quote(model._meta.db_table)} ({columns})"  # noqa: S608  # nosec B608: quoted model identifiers, values are parameters
            f" VALUES ({', '.join(values)}) RETURNING {quote(model._meta.pk.column)})"
        )
        fields_of.append(fields)
    ids = ", ".join(_id_of(quote, models, number) for number in range(len(models)))
    return f"WITH {', '.join(clauses)} SELECT {ids}", fields_of


def _id_of(quote, models, number):
    return f"(SELECT {quote(models[number]._meta.pk.column)} FROM row{number})"  # noqa: S608  # nosec B608: quoted model identifiers
