"""The log's rule, kept by the database: a logged prediction names an existing version and
that version's model.

``Prediction.model`` repeats the version's model so the log has a (model, id) index. No
foreign key guards the log's model, version or challenger's version: a key looks its parent up
and locks it row by row, and two of them took half of a 10,000-row COPY. Triggers keep a
stronger rule instead:
- on the log, a row written or re-pointed must name an existing version and that version's
  model, and an existing challenger's version when it names one. PostgreSQL checks an INSERT
  or COPY once over all its rows (a transition table); SQLite checks row by row;
- on the versions, a version's id and model never change, so the rows that name it stay
  right; and on PostgreSQL a version that logged rows name cannot be deleted. That is checked
  at commit, as the key was (a deferred constraint trigger), and where the key locked the
  version for every row written, the deleting transaction locks the log against writes while
  it checks: a version is deleted rarely, rows are written all the time.
On SQLite the ORM's PROTECT refuses deleting such a version; raw SQL is not checked there,
since Django's ``flush`` deletes the versions before the log within one transaction and SQLite
has no deferred trigger. The model's key on the versions still refuses deleting a model that
has versions, on both.

Migrations 0008 and 0009 install the rule on PostgreSQL, in this form whichever runs (0009,
which removed the version's keys, installs it again for databases already past 0008). On SQLite,
Django rebuilds a table to alter it, which drops the table's triggers and fails on the
triggers that name the table it renames; so there every ``migrate`` (and ``flush``) lifts them
first and installs them at the end, once 0008 is applied (``apps.py``).
"""

from __future__ import annotations

RULE_MIGRATION = ("classifier", "0008_prediction_log_ascending_indexes_model_rule")
RULE_ERROR = "version_id must be an existing version of model_id"
CHALLENGER_ERROR = "challenger_version_id must be an existing version"
FIXED_ERROR = "id and model_id of a version cannot change"
LOGGED_ERROR = "a version named by logged predictions cannot be deleted"

_POSTGRESQL_INSTALL = [
    f"""
CREATE OR REPLACE FUNCTION classifier_prediction_model_is_versions() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    problem text;
BEGIN
    IF TG_LEVEL = 'STATEMENT' THEN
        SELECT CASE WHEN version.model_id IS DISTINCT FROM logged.model_id THEN 'model' ELSE 'challenger' END
        INTO problem
        FROM new_rows AS logged
        LEFT JOIN classifier_modelversion AS version ON version.id = logged.version_id
        LEFT JOIN classifier_modelversion AS challenger ON challenger.id = logged.challenger_version_id
        WHERE version.model_id IS DISTINCT FROM logged.model_id
            OR (logged.challenger_version_id IS NOT NULL AND challenger.id IS NULL)
        LIMIT 1;
    ELSIF NOT EXISTS (
        SELECT 1 FROM classifier_modelversion WHERE id = NEW.version_id AND model_id = NEW.model_id
    ) THEN
        problem := 'model';
    ELSIF NEW.challenger_version_id IS NOT NULL AND NOT EXISTS (
        SELECT 1 FROM classifier_modelversion WHERE id = NEW.challenger_version_id
    ) THEN
        problem := 'challenger';
    END IF;
    IF problem = 'model' THEN
        RAISE foreign_key_violation USING MESSAGE = '{RULE_ERROR}';
    ELSIF problem = 'challenger' THEN
        RAISE foreign_key_violation USING MESSAGE = '{CHALLENGER_ERROR}';
    END IF;
    RETURN NEW;  -- NULL for the statement
END
$$""",
    f"""
CREATE OR REPLACE FUNCTION classifier_modelversion_model_is_fixed() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE integrity_constraint_violation USING MESSAGE = '{FIXED_ERROR}';
END
$$""",
    f"""
CREATE OR REPLACE FUNCTION classifier_modelversion_is_unlogged() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    -- The log's writers lock no version (a key would lock each row's): instead the deleting
    -- transaction waits here for every transaction writing to the log to end, and holds
    -- new writes until it ends, so it sees each row that names the version, and a writer
    -- that comes after it finds the version gone. Reads go on meanwhile.
    LOCK TABLE classifier_prediction IN SHARE MODE;
    IF EXISTS (SELECT 1 FROM classifier_prediction WHERE version_id = OLD.id)
        OR EXISTS (SELECT 1 FROM classifier_prediction WHERE challenger_version_id = OLD.id)
    THEN
        RAISE foreign_key_violation USING MESSAGE = '{LOGGED_ERROR}';
    END IF;
    RETURN NULL;
END
$$""",
    """
CREATE OR REPLACE TRIGGER classifier_prediction_model_on_insert
    AFTER INSERT ON classifier_prediction REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION classifier_prediction_model_is_versions()""",
    """
CREATE OR REPLACE TRIGGER classifier_prediction_model_on_update
    BEFORE UPDATE OF model_id, version_id, challenger_version_id ON classifier_prediction
    FOR EACH ROW EXECUTE FUNCTION classifier_prediction_model_is_versions()""",
    """
CREATE OR REPLACE TRIGGER classifier_modelversion_model_fixed
    BEFORE UPDATE OF id, model_id ON classifier_modelversion
    FOR EACH ROW WHEN (OLD.id IS DISTINCT FROM NEW.id OR OLD.model_id IS DISTINCT FROM NEW.model_id)
    EXECUTE FUNCTION classifier_modelversion_model_is_fixed()""",
    # A constraint trigger cannot be replaced in place.
    "DROP TRIGGER IF EXISTS classifier_modelversion_logged ON classifier_modelversion",
    """
CREATE CONSTRAINT TRIGGER classifier_modelversion_logged
    AFTER DELETE ON classifier_modelversion DEFERRABLE INITIALLY DEFERRED
    FOR EACH ROW EXECUTE FUNCTION classifier_modelversion_is_unlogged()""",
]
_POSTGRESQL_REMOVE = [
    "DROP TRIGGER IF EXISTS classifier_prediction_model_on_insert ON classifier_prediction",
    "DROP TRIGGER IF EXISTS classifier_prediction_model_on_update ON classifier_prediction",
    "DROP TRIGGER IF EXISTS classifier_modelversion_model_fixed ON classifier_modelversion",
    "DROP TRIGGER IF EXISTS classifier_modelversion_logged ON classifier_modelversion",
    "DROP FUNCTION IF EXISTS classifier_prediction_model_is_versions()",
    "DROP FUNCTION IF EXISTS classifier_modelversion_model_is_fixed()",
    "DROP FUNCTION IF EXISTS classifier_modelversion_is_unlogged()",
]
# SQLite has no statement-level trigger: each row is checked as it is written.
_SQLITE_ROW_CHECK = f"""
    SELECT RAISE(ABORT, '{RULE_ERROR}') WHERE NOT EXISTS (
        SELECT 1 FROM classifier_modelversion WHERE id = NEW.version_id AND model_id = NEW.model_id
    );
    SELECT RAISE(ABORT, '{CHALLENGER_ERROR}') WHERE NEW.challenger_version_id IS NOT NULL AND NOT EXISTS (
        SELECT 1 FROM classifier_modelversion WHERE id = NEW.challenger_version_id
    );"""
_SQLITE_INSTALL = [
    f"""
CREATE TRIGGER IF NOT EXISTS classifier_prediction_model_on_insert
BEFORE INSERT ON classifier_prediction
BEGIN {_SQLITE_ROW_CHECK}
END""",
    f"""
CREATE TRIGGER IF NOT EXISTS classifier_prediction_model_on_update
BEFORE UPDATE OF model_id, version_id, challenger_version_id ON classifier_prediction
BEGIN {_SQLITE_ROW_CHECK}
END""",
    f"""
CREATE TRIGGER IF NOT EXISTS classifier_modelversion_model_fixed
BEFORE UPDATE OF id, model_id ON classifier_modelversion
WHEN OLD.id IS NOT NEW.id OR OLD.model_id IS NOT NEW.model_id
BEGIN SELECT RAISE(ABORT, '{FIXED_ERROR}'); END""",
]
_SQLITE_REMOVE = [
    "DROP TRIGGER IF EXISTS classifier_prediction_model_on_insert",
    "DROP TRIGGER IF EXISTS classifier_prediction_model_on_update",
    "DROP TRIGGER IF EXISTS classifier_modelversion_model_fixed",
]
_STATEMENTS = {
    "postgresql": (_POSTGRESQL_INSTALL, _POSTGRESQL_REMOVE),
    "sqlite": (_SQLITE_INSTALL, _SQLITE_REMOVE),
}
_ON_BOTH = (
    "classifier_prediction_model_on_insert",
    "classifier_prediction_model_on_update",
    "classifier_modelversion_model_fixed",
)
# The rule's triggers on each database.
TRIGGERS = {"postgresql": (*_ON_BOTH, "classifier_modelversion_logged"), "sqlite": _ON_BOTH}


def log_rule_install(connection) -> None:
    """Install the triggers (again) on this connection's database; idempotent."""
    _run(connection, _STATEMENTS.get(connection.vendor, ([], []))[0])


def log_rule_remove(connection) -> None:
    """Drop the triggers if they are there."""
    _run(connection, _STATEMENTS.get(connection.vendor, ([], []))[1])


def log_rule_triggers(connection) -> set[str]:
    """The rule's triggers present in this connection's database."""
    query = {
        "postgresql": "SELECT tgname FROM pg_trigger WHERE NOT tgisinternal",
        "sqlite": "SELECT name FROM sqlite_master WHERE type = 'trigger'",
    }.get(connection.vendor)
    if query is None:
        return set()
    with connection.cursor() as cursor:
        cursor.execute(query)
        return {name for (name,) in cursor.fetchall()} & set(TRIGGERS[connection.vendor])


def _run(connection, statements: list[str]) -> None:
    with connection.cursor() as cursor:
        for statement in statements:
            cursor.execute(statement)
