"""The "ML engineers" group: who may train, activate, sync and give feedback (admin and API)."""

from django.contrib.auth.management import create_permissions
from django.db import migrations

GROUP = "ML engineers"
PERMISSIONS = [
    ("training", "trainingrun", "train"),
    ("training", "trainingrun", "view_trainingrun"),
    ("classifier", "mlmodel", "change_mlmodel"),
    ("classifier", "mlmodel", "view_mlmodel"),
    ("classifier", "modelversion", "view_modelversion"),
    ("classifier", "prediction", "change_prediction"),
    ("classifier", "prediction", "view_prediction"),
]


def create_group(apps, schema_editor):
    # Permissions are normally made after all migrations; the group needs them now.
    for app_config in apps.get_app_configs():
        previous = getattr(app_config, "models_module", None)
        app_config.models_module = True
        create_permissions(app_config, apps=apps, verbosity=0)
        app_config.models_module = previous
    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    group, _ = Group.objects.get_or_create(name=GROUP)
    for app_label, model, codename in PERMISSIONS:
        group.permissions.add(
            Permission.objects.get(content_type__app_label=app_label, content_type__model=model, codename=codename)
        )


def remove_group(apps, schema_editor):
    apps.get_model("auth", "Group").objects.filter(name=GROUP).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("training", "0004_trainingrun_train_permission"),
        ("classifier", "0006_prediction_feedback_history"),
        ("auth", "0012_alter_user_first_name_max_length"),
        ("contenttypes", "0002_remove_content_type_name"),
    ]

    operations = [migrations.RunPython(create_group, remove_group)]
