"""What the tests and bench/ share: example data, and real processes started and stopped for them.

- ``data``: the example penguins, the data files, generated penguins, a legacy pickle;
- ``models``: registering a trained result, which database and broker the suite runs on;
- ``processes``: free ports, polling with a deadline, starting and stopping process groups;
- ``postgres`` / ``redis``: private servers (and databases of their own on a shared server);
- ``service``: the service's own processes (manage.py, gunicorn, a Celery worker) and a live stack;
- ``http``: a small HTTP client that never raises, concurrent clients, Prometheus samples;
- ``compose``: docker-compose.yml's interpolation and commands, read as compose reads them;
- ``kserve_client``: the kserve SDK's own venv (its pins clash with ours), built once.

Nothing here imports a test module; bench/run.py imports it too, outside pytest.
"""
