# mlops-bot: the bot and the ecspresso CLI it runs, on a slim Python base, as a non-root user.
#
#   docker build -t mlops-bot .
#   docker build --build-arg ECSPRESSO_VERSION=2.5.0 \
#       --build-arg ECSPRESSO_SHA256_AMD64=<sha256 of ecspresso_2.5.0_linux_amd64.tar.gz> .
#
# The only writable paths at run time are /data (the bot's data dir: the SQLite store) and /tmp
# (ecspresso configs checked out from GitLab); the Helm chart mounts volumes on both and makes
# the root filesystem read-only.

ARG PYTHON_IMAGE=python:3.11.11-slim-bookworm

# ---- build: the app as a wheel, installed with its dependencies into /opt/venv --------------
FROM ${PYTHON_IMAGE} AS build

SHELL ["/bin/bash", "-o", "pipefail", "-c"]
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 PYTHONDONTWRITEBYTECODE=1

WORKDIR /src
COPY pyproject.toml README.md ./
COPY bot ./bot
COPY handlers ./handlers
COPY integrations ./integrations
RUN python -m pip wheel --no-deps --wheel-dir /wheels . \
    && python -m venv /opt/venv \
    && /opt/venv/bin/pip install --no-cache-dir /wheels/mlops_bot-*.whl \
    && /opt/venv/bin/pip check

# ecspresso >= 2.4.0: older versions exit 0 after a circuit-breaker rollback. The sha256 values
# are those of the v2.5.0 release tarballs as kayac/homebrew-tap's formula pins them; when you
# change the version, take both from the release's checksums.txt.
ARG ECSPRESSO_VERSION=2.5.0
ARG ECSPRESSO_SHA256_AMD64=0ef850f642bfa539921630538a92d42e9afa6adef00a5c470bb0d614b0513715
ARG ECSPRESSO_SHA256_ARM64=48273fd9c315fa86be7155071ca2849ea2b6273dbf0f4ba4bcc8e30ccb748ac7
ARG TARGETARCH=amd64
WORKDIR /tmp/ecspresso
RUN case "${TARGETARCH}" in \
        amd64) sha256="${ECSPRESSO_SHA256_AMD64}" ;; \
        arm64) sha256="${ECSPRESSO_SHA256_ARM64}" ;; \
        *) echo "no ecspresso build for ${TARGETARCH}" >&2; exit 1 ;; \
    esac \
    && tarball="ecspresso_${ECSPRESSO_VERSION}_linux_${TARGETARCH}.tar.gz" \
    && python -c 'import sys, urllib.request; urllib.request.urlretrieve(sys.argv[1], sys.argv[2])' \
        "https://github.com/kayac/ecspresso/releases/download/v${ECSPRESSO_VERSION}/${tarball}" \
        "${tarball}" \
    && echo "${sha256}  ${tarball}" | sha256sum --check --strict - \
    && tar -xzf "${tarball}" ecspresso \
    && install -m 0755 ecspresso /usr/local/bin/ecspresso \
    && /usr/local/bin/ecspresso version

# ---- runtime: no compilers, no pip cache, no build tree ---------------------------------------
FROM ${PYTHON_IMAGE}

LABEL org.opencontainers.image.title="mlops-bot" \
      org.opencontainers.image.description="ChatOps bot for ML teams: /train, /deploy, approvals, CI results in Slack" \
      org.opencontainers.image.licenses="Apache-2.0"

ENV PATH=/opt/venv/bin:${PATH} \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    MLOPS_BOT_DATA_DIR=/data \
    MLOPS_BOT_HOST=0.0.0.0 \
    MLOPS_BOT_PORT=3000

RUN groupadd --system --gid 10001 mlops-bot \
    && useradd --system --uid 10001 --gid mlops-bot --home-dir /data --no-create-home \
        --shell /usr/sbin/nologin mlops-bot \
    && install -d -o mlops-bot -g mlops-bot -m 0750 /data

COPY --from=build /opt/venv /opt/venv
COPY --from=build /usr/local/bin/ecspresso /usr/local/bin/ecspresso

USER 10001:10001
WORKDIR /data
VOLUME ["/data"]
EXPOSE 3000

ENTRYPOINT ["mlops-bot"]
CMD ["serve"]
