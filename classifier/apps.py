from django.apps import AppConfig
from django.db import connections
from django.db.models.signals import post_migrate, pre_migrate


class ClassifierConfig(AppConfig):
    name = "classifier"
    verbose_name = "Model registry and predictions"

    def ready(self) -> None:
        from .metrics import collector_register
        from .monitoring.metrics import MonitoringCollector

        collector_register(MonitoringCollector())
        pre_migrate.connect(_log_rule_lift, sender=self)
        post_migrate.connect(_log_rule_restore, sender=self)


# SQLite rebuilds a table to alter it, which loses the log rule's triggers (classifier/log_rule.py)
# and fails on those that name the rebuilt table: each migrate lifts them and puts them back.
def _log_rule_lift(*, using, **kwargs) -> None:
    connection = connections[using]
    if connection.vendor == "sqlite":
        from .log_rule import log_rule_remove

        log_rule_remove(connection)


def _log_rule_restore(*, using, **kwargs) -> None:
    connection = connections[using]
    if connection.vendor != "sqlite":
        return
    from django.db.migrations.recorder import MigrationRecorder

    from .log_rule import RULE_MIGRATION, log_rule_install

    if RULE_MIGRATION in MigrationRecorder(connection).applied_migrations():
        log_rule_install(connection)
