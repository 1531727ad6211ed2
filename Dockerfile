# syntax=docker/dockerfile:1
# The production image: docker-compose.yml runs gunicorn (web) and Celery (worker) from it,
# and the notebook profile from its `notebook` stage. Build: docker compose build.

# --- build: the pinned requirements in a virtualenv ------------------------------------------
FROM python:3.12-slim AS build
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/venv
COPY requirements.txt /tmp/requirements.txt
# Wheels only: nothing is compiled, so there is no compiler here nor in the final image.
RUN /opt/venv/bin/pip install --only-binary=:all: -r /tmp/requirements.txt

# --- app: the venv, the code, static files; runs as an unprivileged user ---------------------
FROM python:3.12-slim AS app
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PATH=/opt/venv/bin:$PATH \
    DJANGO_SETTINGS_MODULE=penguinsite.settings \
    DJANGO_STATIC_ROOT=/app/staticfiles \
    PENGUIN_VAR_DIR=/data/var \
    PENGUIN_ARTIFACTS_DIR=/data/artifacts \
    GUNICORN_BIND=0.0.0.0:8000 \
    MPLCONFIGDIR=/tmp/matplotlib
RUN groupadd --system --gid 10001 penguin \
    && useradd --system --uid 10001 --gid penguin --create-home --home-dir /home/penguin \
       --shell /usr/sbin/nologin penguin
COPY --from=build /opt/venv /opt/venv
WORKDIR /app
# The code stays owned by root: the service can read it, not change it.
COPY . .
# collectstatic imports the settings, which need a secret key: a throwaway one, used for
# nothing else and not kept in the image. whitenoise serves /app/staticfiles at runtime.
RUN DJANGO_SECRET_KEY=collectstatic-only python manage.py collectstatic --noinput -v0 \
    && python -m compileall -q /app \
    && mkdir -p /data/artifacts /data/var \
    && chown -R penguin:penguin /data
USER penguin
EXPOSE 8000
CMD ["gunicorn", "penguinsite.wsgi", "-c", "penguinsite/gunicorn.conf.py"]

# --- notebook: Jupyter Lab on top of the app (docker compose --profile notebook up) -----------
FROM app AS notebook
USER root
COPY requirements-notebook.txt /tmp/requirements-notebook.txt
# /data/notebooks: the workspace (a volume in compose); created here so that the volume is the user's.
RUN pip install --no-cache-dir --disable-pip-version-check --only-binary=:all: -r /tmp/requirements-notebook.txt \
    && mkdir -p /data/notebooks && chown penguin:penguin /data/notebooks
USER penguin
EXPOSE 8888
CMD ["jupyter", "lab", "--ip=0.0.0.0", "--port=8888", "--no-browser", "--ServerApp.root_dir=/app/training/notebooks"]

# --- the default target: `docker build .` gives the app image, not the notebook one ----------
FROM app AS production
