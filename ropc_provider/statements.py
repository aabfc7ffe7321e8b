"""The SQL of the hot paths, written once per process instead of compiled by the
ORM on every request, where compiling cost more CPU than the database spent answering: inserts of
the rows every grant writes, lookups (``Lookup``), the sign-in's and the rotation's conditional
writes, and rows written together in one statement. The services say what each means; only here
is SQL text. Only quoted identifiers from model metadata go into it; every value is a parameter."""

import functools
from contextlib import contextmanager
from contextvars import ContextVar

from django.contrib.auth import get_user_model
from django.db import connections, router
from django.db.models import Model
from django.db.models.manager import BaseManager
from django.db.models.query import get_related_populators
from django.db.models.signals import post_save, pre_save
from oauth2_provider.models import get_access_token_model, get_refresh_token_model

from .models import Authenticator, ClientPolicy, Realm, RealmAccount, SessionCutoff

AccessToken, RefreshToken = get_access_token_model(), get_refresh_token_model()


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


@functools.cache
def _update_statement(model, alias, names, unset):
    quote = connections[alias].ops.quote_name
    meta = model._meta
    assignments = ", ".join(f"{quote(meta.get_field(name).column)} = %s" for name in names)
    where = " AND ".join(
        [f"{quote(meta.pk.column)} = %s", *(f"{quote(meta.get_field(name).column)} IS NULL" for name in unset)]
    )
    return f"UPDATE {quote(meta.db_table)} SET {assignments} WHERE {where}"  # noqa: S608  # nosec B608: quoted model identifiers, values are parameters


def update(model, pk, values, *, unset=()):
    """``model.objects.filter(pk=pk, <each of unset>__isnull=True).update(**values)`` in a statement
    written once; returns how many rows it changed (0 or 1: a claim lost, or won)."""
    connection = connections[router.db_for_write(model)]
    statement = _update_statement(model, connection.alias, tuple(values), tuple(unset))
    params = [model._meta.get_field(name).get_db_prep_save(value, connection) for name, value in values.items()]
    params.append(model._meta.pk.get_db_prep_value(pk, connection))
    with connection.cursor() as cursor:
        cursor.execute(statement, params)
        return cursor.rowcount


def unheard(model):
    """Whether saving a ``model`` row may skip ``Model.save``: nothing listens for its signals and
    the model does not override ``save`` (a swapped token model may)."""
    return model.save is Model.save and not (pre_save.has_listeners(model) or post_save.has_listeners(model))


# Stand-ins for a lookup's values while the ORM writes its statement (text: client ids, checksums);
# no real value contains NUL characters.
_STAND_INS = tuple(f"\x00ropc-lookup-value-{number}\x00" for number in range(4))


def _plain_managers(model):
    return all(type(manager).get_queryset is BaseManager.get_queryset for manager in model._meta.managers)


class Lookup:
    """A SELECT the ORM writes once per database, then runs with new values: for a
    select_related lookup on every request, compiling the SQL cost more CPU than the database
    spent answering it. ``build(*values)`` returns the QuerySet; its text values are stood in for
    while it is compiled. Rows come back as the ORM makes them: converters applied, related objects
    and annotations set."""

    def __init__(self, model, build, arity=1):
        self._model, self._build, self._arity = model, build, arity
        # Per database alias, not per connection: Django gives each thread its own connection, and
        # a server that starts a thread per request (runserver) would keep one compilation each.
        # Once compiled, the compiler is only read (its converters are pure functions of the
        # backend), so threads share it; each runs the statement on its own connection.
        self._compiled = {}

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
        # What the ORM's ModelIterable does with a row, set up once. Django 6.1 gave querysets a
        # fetch mode, which the populators and from_db() take.
        model, fetch_mode = klass_info["model"], getattr(queryset, "_fetch_mode", None)
        by_mode = () if fetch_mode is None else (fetch_mode,)
        compiled = {
            "compiler": compiler,
            "sql": sql,
            "params": params,
            "slots": slots,
            "from_db": model.from_db if fetch_mode is None else functools.partial(model.from_db, fetch_mode=fetch_mode),
            "span": (fields[0], fields[-1] + 1),
            "init_list": [column[0].target.attname for column in select[fields[0] : fields[-1] + 1]],
            "annotations": dict(compiler.annotation_col_map),
            "related": get_related_populators(klass_info, select, connection.alias, *by_mode),
        }
        self._compiled[connection.alias] = compiled
        return compiled

    def first(self, *values):
        """The first row for these values, or None (the query's own ordering decides)."""
        if not _plain_managers(self._model):
            # A manager with its own get_queryset may filter by the request (a tenant, say): what
            # it wrote for the first request would answer every later one. The ORM's way, each time.
            return next(iter(self._build(*values)), None)
        connection = connections[router.db_for_read(self._model)]
        compiled = self._compiled.get(connection.alias) or self._compile(connection)
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
        instance = compiled["from_db"](connection.alias, compiled["init_list"], row[start:end])
        for populator in compiled["related"]:
            populator.populate(row, instance)
        for name, position in compiled["annotations"].items():
            setattr(instance, name, row[position])
        return instance


# -- the sign-in and the rotation ----------------------------------------------------------------------


def user_columns():
    User = get_user_model()
    columns = {field.name: field.column for field in User._meta.concrete_fields}
    return columns, "is_active" in columns


@functools.cache
def sign_in(*, project_realm, write_last_login, has_policy, without_factor=False):
    """``signin.record_sign_in``'s statement: the user row written (last_login) or locked, only if
    the sign-in still stands. Built through the ORM (a filtered UPDATE with subqueries) it cost more
    CPU than the rest of a password grant's queries together."""
    User = get_user_model()
    connection = connections[router.db_for_write(User)]
    quote = connection.ops.quote_name
    share = " FOR SHARE" if connection.features.has_select_for_update else ""

    def column(model, name):
        return quote(model._meta.get_field(name).column)

    columns, uses_active = user_columns()
    table, pk = quote(User._meta.db_table), quote(User._meta.pk.column)
    where = f"{table}.{pk} = %s AND {quote(columns['password'])} = %s"
    if uses_active:
        where += f" AND {quote(columns['is_active'])} = %s"
    realms = quote(Realm._meta.db_table)
    realm_id, realm_active = f"{realms}.{column(Realm, 'id')}", f"{realms}.{column(Realm, 'is_active')}"
    where += f" AND EXISTS (SELECT 1 FROM {realms} WHERE {realm_id} = %s AND {realm_active} = %s{share})"  # noqa: S608  # nosec B608: quoted model identifiers, values are parameters
    if has_policy:
        policies, links = quote(ClientPolicy._meta.db_table), ClientPolicy.realms.through
        link_table, policy_id = quote(links._meta.db_table), f"{policies}.{column(ClientPolicy, 'id')}"
        where += (
            f" AND EXISTS (SELECT 1 FROM {policies} INNER JOIN {link_table}"  # noqa: S608  # nosec B608: quoted model identifiers, values are parameters
            f" ON {link_table}.{column(links, 'clientpolicy')} = {policy_id}"
            f" WHERE {policy_id} = %s AND {policies}.{column(ClientPolicy, 'is_active')} = %s"
            f" AND {link_table}.{column(links, 'realm')} = %s{share})"
        )
    if project_realm:
        accounts = quote(RealmAccount._meta.db_table)
        account_user = quote(RealmAccount._meta.get_field("user").column)
        where += f" AND NOT EXISTS (SELECT 1 FROM {accounts} WHERE {accounts}.{account_user} = {table}.{pk})"  # noqa: S608  # nosec B608: quoted model identifiers, values are parameters
    if without_factor:
        factors = quote(Authenticator._meta.db_table)
        factor_user, confirmed = column(Authenticator, "user"), column(Authenticator, "confirmed_at")
        where += (
            f" AND NOT EXISTS (SELECT 1 FROM {factors} WHERE {factors}.{factor_user} = {table}.{pk}"  # noqa: S608  # nosec B608: quoted model identifiers, values are parameters
            f" AND {factors}.{confirmed} IS NOT NULL)"
        )
    if write_last_login:
        return f"UPDATE {table} SET {quote(columns['last_login'])} = %s WHERE {where}"  # noqa: S608  # nosec B608: quoted model identifiers, values are parameters
    # Without the write, lock the row as the UPDATE would: a password change waits for this
    # sign-in's tokens, then ends them.
    lock = " FOR UPDATE" if connection.features.has_select_for_update else ""
    return f"SELECT 1 FROM {table} WHERE {where}{lock}"  # noqa: S608  # nosec B608: quoted model identifiers, values are parameters


@functools.cache
def refresh_claim(alias):
    """``tokens.rotate``'s claim of a live refresh token, unless its user's cutoff moved past it
    since it was read (a sign-out racing the rotation wins). Compiled by the ORM (an UPDATE filtered
    by a NOT EXISTS subquery) it cost more than the rest of a refresh."""
    connection = connections[alias]
    quote = connection.ops.quote_name

    def column(model, name):
        return quote(model._meta.get_field(name).column)

    tokens, cutoffs = quote(RefreshToken._meta.db_table), quote(SessionCutoff._meta.db_table)
    valid_from = column(SessionCutoff, "refresh_tokens_valid_from")
    token_user = f"{tokens}.{column(RefreshToken, 'user')}"
    statement = (
        f"UPDATE {tokens} SET {column(RefreshToken, 'revoked')} = %s, {column(RefreshToken, 'access_token')} = NULL"  # noqa: S608  # nosec B608: quoted model identifiers, values are parameters
        f" WHERE {column(RefreshToken, 'id')} = %s AND {column(RefreshToken, 'revoked')} IS NULL"
        f" AND NOT EXISTS (SELECT 1 FROM {cutoffs}"
        f" WHERE {cutoffs}.{column(SessionCutoff, 'user')} = {token_user}"
        f" AND {cutoffs}.{valid_from} > {tokens}.{column(RefreshToken, 'created')})"
    )
    if connection.vendor == "postgresql":
        # The user's row first (the key-share lock the new pair's foreign keys take anyway), then
        # the token's: the order a change of the user takes them in (its UPDATE, then the cutoff
        # revoking the tokens), so the two wait for each other and never deadlock, whatever the
        # change locks the user row with (a renamed username takes the strongest lock).
        User = get_user_model()
        users, user_pk = quote(User._meta.db_table), quote(User._meta.pk.column)
        statement += f" AND EXISTS (SELECT 1 FROM {users} WHERE {users}.{user_pk} = {token_user} FOR KEY SHARE)"  # noqa: S608  # nosec B608: quoted model identifiers
    return statement


@functools.cache
def access_token_delete(alias):
    """A one-statement delete, when nothing but DOT's refresh token (already unlinked) points at
    access tokens; otherwise None, and the ORM's collector handles the other relations."""
    relations = [rel for rel in AccessToken._meta.related_objects if rel.related_model is not RefreshToken]
    if relations:
        return None
    quote = connections[alias].ops.quote_name
    return f"DELETE FROM {quote(AccessToken._meta.db_table)} WHERE {quote(AccessToken._meta.pk.column)} = %s"  # noqa: S608  # nosec B608: quoted model identifiers, values are parameters


def claim_totp_step(authenticator_pk, step, cap):
    """``mfa.verify``'s claim of a TOTP step: spent with every earlier one, only if later than the
    last one used, on a confirmed factor not past its failure cap. Returns whether it was won."""
    connection = connections[router.db_for_write(Authenticator)]
    with connection.cursor() as cursor:
        cursor.execute(_totp_claim(connection.alias), [step, authenticator_pk, cap, step])
        return cursor.rowcount == 1


@functools.cache
def _totp_claim(alias):
    quote = connections[alias].ops.quote_name

    def column(name):
        return quote(Authenticator._meta.get_field(name).column)

    step, failures = column("last_used_step"), column("failed_attempts")
    return (
        f"UPDATE {quote(Authenticator._meta.db_table)} SET {step} = %s, {failures} = 0"  # noqa: S608  # nosec B608: quoted model identifiers, values are parameters
        f" WHERE {column('id')} = %s AND {column('confirmed_at')} IS NOT NULL AND {failures} < %s"
        f" AND ({step} IS NULL OR {step} < %s)"
    )


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


def write_waiting():
    """Write now the rows a ``written_together`` block holds so far: a row saved the ORM's way
    inside the block (a receiver listens for it) may refer to one of them, and needs its id."""
    waiting = _together.get()
    if waiting is not None and waiting[1]:
        connection, rows = waiting
        _write_together(connection, rows)
        rows.clear()


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
