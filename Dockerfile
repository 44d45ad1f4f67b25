# syntax=docker/dockerfile:1
# Two stages: wheels for the project and every dependency are built once in `build` (which has
# a compiler, for any dependency without a binary wheel); `runtime` installs only those wheels,
# has no compiler, and runs as an unprivileged user.
#   docker build -t hitl .
#   docker run --rm -e HITL_SECRET_KEY=... -e HITL_DATABASE_URL=... -p 5000:5000 hitl

FROM python:3.11-slim AS build
RUN apt-get update && apt-get install -y --no-install-recommends build-essential && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY pyproject.toml README.md ./
COPY bandit ./bandit
COPY curation_app ./curation_app
COPY sim ./sim
COPY migrations ./migrations
RUN python -m pip wheel --no-cache-dir --wheel-dir /wheels /src

FROM python:3.11-slim AS runtime
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PATH=/venv/bin:$PATH \
    PROMETHEUS_MULTIPROC_DIR=/tmp/hitl-metrics
RUN groupadd --system hitl && useradd --system --gid hitl --home-dir /app --shell /usr/sbin/nologin hitl
COPY --from=build /wheels /wheels
RUN python -m venv /venv && /venv/bin/pip install --no-cache-dir --no-index --find-links /wheels hitl-recommender && rm -rf /wheels
WORKDIR /app
USER hitl
EXPOSE 5000
# /healthz answers when the worker is up; compose's web service also waits on /readyz.
HEALTHCHECK --interval=10s --timeout=3s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import urllib.request, sys; sys.exit(urllib.request.urlopen('http://127.0.0.1:5000/healthz', timeout=2).status != 200)"]
CMD ["hitl", "serve", "--host", "0.0.0.0", "--port", "5000"]
