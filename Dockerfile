# The 民呼我应 image: web (gunicorn), RQ workers, the beat and the one-shot migration all run from it
# (docker-compose.yml picks the command). Dependencies come only from requirements.lock, by hash.
FROM python:3.11-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /srv/minhu

# Locked, hash-checked dependencies first: this layer is rebuilt only when the lock changes.
COPY requirements.lock ./
RUN pip install --require-hashes --no-deps -r requirements.lock

RUN groupadd --system --gid 10001 minhu \
    && useradd --system --uid 10001 --gid minhu --home-dir /srv/minhu --shell /usr/sbin/nologin minhu

# The code (every package, migrations, gunicorn.conf.py), read-only for the service user; .dockerignore
# leaves out tests, benchmarks, the local virtualenv, instance data and .env.
COPY --chown=root:root . ./
# Only instance/ (uploads, evidence) is writable, and only by the service user; a named volume mounted
# there starts with this ownership.
RUN mkdir -p /srv/minhu/instance && chown minhu:minhu /srv/minhu/instance

USER minhu
ENV FLASK_APP=app \
    INSTANCE_PATH=/srv/minhu/instance \
    LOG_FORMAT=json

EXPOSE 8000
HEALTHCHECK --interval=15s --timeout=3s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=2)"]
CMD ["gunicorn", "-c", "gunicorn.conf.py"]
