# leadtime's one image: the API (`leadtime serve`), the flows' worker (`leadtime deploy`), and
# the MLflow and Prefect servers (both are locked dependencies, with psycopg2 and asyncpg for
# PostgreSQL). Build: `docker compose build` (see README, Operations).
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    UV_COMPILE_BYTECODE=1 \
    UV_LINK_MODE=copy \
    UV_PROJECT_ENVIRONMENT=/app/.venv

# libgomp1: OpenMP for CatBoost, scikit-learn and Prophet's Stan fits
RUN apt-get update \
    && apt-get install -y --no-install-recommends libgomp1 \
    && rm -rf /var/lib/apt/lists/* \
    && pip install --no-cache-dir uv==0.13.8

WORKDIR /app
# dependencies first (cached layer while only the code changes), exactly as locked
COPY pyproject.toml uv.lock README.md ./
RUN uv sync --frozen --no-dev --no-install-project
COPY leadtime ./leadtime
COPY models ./models
COPY flows ./flows
COPY features ./features
COPY serving ./serving
COPY monitoring ./monitoring
COPY simulation ./simulation
COPY evaluation ./evaluation
COPY loop ./loop
COPY connectors ./connectors
COPY leadtime_cli ./leadtime_cli
COPY leadtime.yaml ./
RUN uv sync --frozen --no-dev

RUN useradd --system --uid 10001 --create-home --home-dir /home/leadtime leadtime \
    && mkdir -p /state /mlartifacts \
    && chown leadtime:leadtime /state /mlartifacts
USER leadtime
ENV PATH=/app/.venv/bin:$PATH \
    LEADTIME_HOME=/state \
    PREFECT_HOME=/state/prefect
VOLUME ["/state"]
EXPOSE 8000
CMD ["leadtime", "serve", "--host", "0.0.0.0", "--port", "8000"]
