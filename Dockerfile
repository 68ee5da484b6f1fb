# SPDX-License-Identifier: Apache-2.0
# The operator image: `wio run`, as uid 10001, with only the runtime dependencies (no
# `devcluster` extras: etcd and OpenBao are for local development and tests).
#   docker build -t wio:dev .
# BASE_IMAGE is any Debian-like image whose `python3` is 3.11 or newer and can make a venv:
# python:3.11-slim by default; `wio.devcluster.image` substitutes a Debian bookworm base it
# makes itself (python3, python3-venv) where no registry is reachable.
ARG BASE_IMAGE=python:3.11-slim

FROM ${BASE_IMAGE} AS build
# A venv rather than the base's own site-packages: Debian's python3 refuses `pip install`
# into the system (PEP 668), and the same path works with either base.
RUN python3 -m venv /opt/wio
WORKDIR /src
COPY pyproject.toml README.md ./
# pip reaches the package index in both RUN steps below. A network whose TLS goes through an
# inspecting proxy needs its CA for that: the optional `ca-bundle` build secret
# (`--secret id=ca-bundle,src=...`) is used by these steps only and never lands in an image.
# The pip cache mount keeps downloads across builds without being part of any layer.
# Dependencies first, read from pyproject.toml alone, so a change to the operator's code
# reuses this layer instead of fetching and installing them again.
RUN --mount=type=cache,target=/root/.cache/pip \
    --mount=type=secret,id=ca-bundle \
    if [ -s /run/secrets/ca-bundle ]; then export PIP_CERT=/run/secrets/ca-bundle; fi \
    && python3 -c 'import tomllib; print(*tomllib.load(open("pyproject.toml", "rb"))["project"]["dependencies"], sep="\n")' \
       > requirements.txt \
    && /opt/wio/bin/pip install --disable-pip-version-check --requirement requirements.txt
COPY operator ./operator
# The wio wheel, built here and installed into the venv that the final stage copies, so the
# final image carries no build tools, wheels or pip.
RUN --mount=type=cache,target=/root/.cache/pip \
    --mount=type=secret,id=ca-bundle \
    if [ -s /run/secrets/ca-bundle ]; then export PIP_CERT=/run/secrets/ca-bundle; fi \
    && /opt/wio/bin/pip wheel --disable-pip-version-check --no-deps --wheel-dir /wheels . \
    && /opt/wio/bin/pip install --disable-pip-version-check --no-deps --no-index /wheels/wio-*.whl \
    && /opt/wio/bin/pip uninstall --yes pip setuptools

FROM ${BASE_IMAGE}
ENV PATH=/opt/wio/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1
RUN groupadd --system --gid 10001 wio \
    && useradd --system --uid 10001 --gid 10001 --no-create-home \
       --home-dir /nonexistent --shell /usr/sbin/nologin wio
# Same base, same path: the venv's interpreter links resolve to this stage's python3.
COPY --from=build /opt/wio /opt/wio
USER 10001:10001
EXPOSE 8443 9090
ENTRYPOINT ["wio", "run"]
