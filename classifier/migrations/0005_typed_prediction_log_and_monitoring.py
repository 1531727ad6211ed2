"""The prediction log's inputs and probabilities move from JSON to typed columns; reference
profiles on versions; stored monitoring reports.

Existing rows are converted in the database with one UPDATE (JSON operators of PostgreSQL or
SQLite), so a large log converts without loading rows into Python.
"""

import django.db.models.deletion
from django.db import migrations, models

INPUTS = {
    "island": "smallint",
    "bill_length_mm": "double precision",
    "bill_depth_mm": "double precision",
    "flipper_length_mm": "double precision",
    "body_mass_g": "double precision",
    "sex": "smallint",
    "year": "smallint",
}
PROBABILITIES = {"proba_adelie": "Adelie", "proba_chinstrap": "Chinstrap", "proba_gentoo": "Gentoo"}
TABLE = "classifier_prediction"


def _forward_sql(vendor: str) -> str:
    if vendor == "postgresql":
        inputs = [f"{name} = (inputs->>'{name}')::numeric::{kind}" for name, kind in INPUTS.items()]
        proba = [f"{column} = (probabilities->>'{key}')::double precision" for column, key in PROBABILITIES.items()]
    else:  # SQLite (JSON1)
        inputs = [f"{name} = json_extract(inputs, '$.{name}')" for name in INPUTS]
        proba = [f"{column} = json_extract(probabilities, '$.{key}')" for column, key in PROBABILITIES.items()]
    return f"UPDATE {TABLE} SET {', '.join(inputs + proba)}"


def _backward_sql(vendor: str) -> str:
    build = "jsonb_build_object" if vendor == "postgresql" else "json_object"
    inputs = ", ".join(f"'{name}', {name}" for name in INPUTS)
    proba = ", ".join(f"'{key}', {column}" for column, key in PROBABILITIES.items())
    return (
        f"UPDATE {TABLE} SET inputs = {build}({inputs}), "
        f"probabilities = CASE WHEN proba_adelie IS NULL THEN NULL ELSE {build}({proba}) END"
    )


def _run(make_sql):
    def run(apps, schema_editor):
        vendor = schema_editor.connection.vendor
        if vendor not in ("postgresql", "sqlite"):
            raise RuntimeError(f"No conversion of the prediction log written for {vendor}.")
        schema_editor.execute(make_sql(vendor))

    return run


class Migration(migrations.Migration):
    dependencies = [
        ("classifier", "0004_prediction_endpoint_infer"),
    ]

    operations = [
        migrations.AddField(
            model_name="modelversion",
            name="reference",
            field=models.JSONField(blank=True, default=dict),
        ),
        migrations.AddField(
            model_name="modelversion",
            name="reference_note",
            field=models.TextField(blank=True, help_text="Why the version has no reference profile."),
        ),
        *[
            migrations.AddField(
                model_name="prediction",
                name=name,
                field=models.PositiveSmallIntegerField(null=True)
                if kind == "smallint"
                else models.FloatField(null=True),
            )
            for name, kind in INPUTS.items()
        ],
        *[
            migrations.AddField(
                model_name="prediction", name=column, field=models.FloatField(blank=True, null=True)
            )
            for column in PROBABILITIES
        ],
        # Nullable first, so that going back can re-add the column before refilling it.
        migrations.AlterField(model_name="prediction", name="inputs", field=models.JSONField(null=True)),
        migrations.RunPython(_run(_forward_sql), _run(_backward_sql), elidable=False),
        migrations.RemoveField(model_name="prediction", name="inputs"),
        migrations.RemoveField(model_name="prediction", name="probabilities"),
        # Reversing re-adds the JSON columns as nullable; the RunPython above refills them.
        *[
            migrations.AlterField(
                model_name="prediction",
                name=name,
                field=models.PositiveSmallIntegerField() if kind == "smallint" else models.FloatField(),
            )
            for name, kind in INPUTS.items()
        ],
        migrations.CreateModel(
            name="MonitoringReport",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("created_at", models.DateTimeField(auto_now_add=True)),
                ("window_since", models.DateTimeField()),
                ("window_until", models.DateTimeField()),
                ("predictions", models.PositiveIntegerField()),
                (
                    "verdict",
                    models.CharField(
                        choices=[
                            ("drift", "drift"),
                            ("no_drift", "no drift"),
                            ("not_enough_data", "not enough data"),
                            ("no_reference", "no reference profile"),
                        ],
                        max_length=16,
                    ),
                ),
                ("dataset_drift", models.BooleanField(null=True)),
                ("drift_share", models.FloatField(null=True)),
                ("drifted_features", models.JSONField(blank=True, default=list)),
                ("labelled", models.PositiveIntegerField(default=0)),
                ("accuracy", models.FloatField(null=True)),
                ("accuracy_low", models.FloatField(null=True)),
                ("accuracy_high", models.FloatField(null=True)),
                ("report", models.JSONField(default=dict, help_text="The whole report, as the monitoring API answered it.")),
                (
                    "model",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="monitoring_reports",
                        to="classifier.mlmodel",
                    ),
                ),
                (
                    "version",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="monitoring_reports",
                        to="classifier.modelversion",
                    ),
                ),
            ],
            options={
                "ordering": ["-created_at", "-id"],
                "indexes": [
                    models.Index(fields=["version", "-created_at"], name="monitoringreport_version"),
                    models.Index(fields=["model", "-created_at"], name="monitoringreport_model"),
                ],
            },
        ),
    ]
