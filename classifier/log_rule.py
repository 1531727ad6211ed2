"""The log's rule, kept by the database: a logged prediction's model is its version's model.

``Prediction.model`` repeats the version's model so the log has a (model, id) index. No
foreign key guards it: a key looks the model up row by row, a fifth of a 10,000-row COPY.
Triggers keep a stronger rule instead:
- on the log, a row written or re-pointed must name an existing version and that version's
  model. PostgreSQL checks an INSERT or COPY once over all its rows (a transition table);
  SQLite checks row by row;
- on the versions, a version's model never changes (a version is immutable), so the rows
  that name it stay right.
The version's own foreign key still refuses to delete a version that has logged rows, and the
model's key on the versions a model that has versions. The checks run at the end of each
statement, where Django's keys wait for the commit.

Migration 0008 installs them on PostgreSQL. On SQLite, Django rebuilds a table to alter it,
which drops the table's triggers and fails on the triggers that name the table it renames;
so there every ``migrate`` (and ``flush``) lifts them first and installs them at the end, once
0008 is applied (``apps.py``).
"""

from __future__ import annotations

RULE_MIGRATION = ("classifier", "0008_prediction_log_ascending_indexes_model_rule")
RULE_ERROR = "model_id must be the model of version_id"
FIXED_ERROR = "model_id of a version cannot change"

_POSTGRESQL_INSTALL = [
    f"""
CREATE OR REPLACE FUNCTION classifier_prediction_model_is_versions() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_LEVEL = 'STATEMENT' THEN
        IF EXISTS (
            SELECT 1 FROM new_rows AS logged
            LEFT JOIN classifier_modelversion AS version ON version.id = logged.version_id
            WHERE version.model_id IS DISTINCT FROM logged.model_id
        ) THEN
            RAISE foreign_key_violation USING MESSAGE = '{RULE_ERROR}';
        END IF;
        RETURN NULL;
    END IF;
    IF NOT EXISTS (
        SELECT 1 FROM classifier_modelversion WHERE id = NEW.version_id AND model_id = NEW.model_id
    ) THEN
        RAISE foreign_key_violation USING MESSAGE = '{RULE_ERROR}';
    END IF;
    RETURN NEW;
END
$$""",
    f"""
CREATE OR REPLACE FUNCTION classifier_modelversion_model_is_fixed() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE integrity_constraint_violation USING MESSAGE = '{FIXED_ERROR}';
END
$$""",
    """
CREATE OR REPLACE TRIGGER classifier_prediction_model_on_insert
    AFTER INSERT ON classifier_prediction REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION classifier_prediction_model_is_versions()""",
    """
CREATE OR REPLACE TRIGGER classifier_prediction_model_on_update
    BEFORE UPDATE OF model_id, version_id ON classifier_prediction
    FOR EACH ROW EXECUTE FUNCTION classifier_prediction_model_is_versions()""",
    """
CREATE OR REPLACE TRIGGER classifier_modelversion_model_fixed
    BEFORE UPDATE OF model_id ON classifier_modelversion
    FOR EACH ROW WHEN (OLD.model_id IS DISTINCT FROM NEW.model_id)
    EXECUTE FUNCTION classifier_modelversion_model_is_fixed()""",
]
_POSTGRESQL_REMOVE = [
    "DROP TRIGGER IF EXISTS classifier_prediction_model_on_insert ON classifier_prediction",
    "DROP TRIGGER IF EXISTS classifier_prediction_model_on_update ON classifier_prediction",
    "DROP TRIGGER IF EXISTS classifier_modelversion_model_fixed ON classifier_modelversion",
    "DROP FUNCTION IF EXISTS classifier_prediction_model_is_versions()",
    "DROP FUNCTION IF EXISTS classifier_modelversion_model_is_fixed()",
]
_SQLITE_VERSION_MATCHES = (
    "EXISTS (SELECT 1 FROM classifier_modelversion WHERE id = NEW.version_id AND model_id = NEW.model_id)"
)
_SQLITE_INSTALL = [
    f"""
CREATE TRIGGER IF NOT EXISTS classifier_prediction_model_on_insert
BEFORE INSERT ON classifier_prediction WHEN NOT {_SQLITE_VERSION_MATCHES}
BEGIN SELECT RAISE(ABORT, '{RULE_ERROR}'); END""",
    f"""
CREATE TRIGGER IF NOT EXISTS classifier_prediction_model_on_update
BEFORE UPDATE OF model_id, version_id ON classifier_prediction WHEN NOT {_SQLITE_VERSION_MATCHES}
BEGIN SELECT RAISE(ABORT, '{RULE_ERROR}'); END""",
    f"""
CREATE TRIGGER IF NOT EXISTS classifier_modelversion_model_fixed
BEFORE UPDATE OF model_id ON classifier_modelversion WHEN OLD.model_id IS NOT NEW.model_id
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
TRIGGERS = (
    "classifier_prediction_model_on_insert",
    "classifier_prediction_model_on_update",
    "classifier_modelversion_model_fixed",
)


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
        return {name for (name,) in cursor.fetchall()} & set(TRIGGERS)


def _run(connection, statements: list[str]) -> None:
    with connection.cursor() as cursor:
        for statement in statements:
            cursor.execute(statement)
