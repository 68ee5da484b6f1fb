# SPDX-License-Identifier: Apache-2.0
# The operator image: `wio run`, as uid 10001, with only the runtime dependencies (no
# `devcluster` extras: etcd and OpenBao are for local development and tests).
#   docker build -t wio:dev .
FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY operator ./operator
# Wheels of wio and everything it depends on, built once here and installed below, so the
# final image carries no build tools or pip caches.
RUN pip wheel --no-cache-dir --wheel-dir /wheels .

FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
RUN groupadd --system --gid 10001 wio \
    && useradd --system --uid 10001 --gid 10001 --no-create-home \
       --home-dir /nonexistent --shell /usr/sbin/nologin wio
RUN --mount=type=bind,from=build,source=/wheels,target=/wheels \
    pip install --no-cache-dir --no-index --find-links=/wheels wio
USER 10001:10001
EXPOSE 8080
ENTRYPOINT ["wio", "run"]
