# mediad with its tools and the servers of its embedded default.
#   docker build -t mediad .
#   docker run -p 8080:8080 -v mediad:/var/lib/mediad -e MEDIAD_SERVER_API_TOKENS=… mediad
#   docker exec CONTAINER mediad backup - > mediad.dump      # the job store (README: Backups)
# It listens on 0.0.0.0, so it refuses to start without API tokens (or
# MEDIAD_SERVER_ALLOW_ANONYMOUS=true).

# The web page, built with Node.js; only its output goes into the image.
FROM node:20-bookworm-slim AS page
WORKDIR /src
COPY ui/package.json ui/package-lock.json ./ui/
RUN cd ui && npm ci --no-audit --no-fund
COPY ui ./ui
COPY mediad/openapi.yaml ./mediad/openapi.yaml
RUN cd ui && npm run build

FROM python:3.11-slim-bookworm

RUN apt-get update \
 && apt-get install -y --no-install-recommends ffmpeg aria2 postgresql redis-server \
 && rm -rf /var/lib/apt/lists/*

WORKDIR /opt/mediad
COPY pyproject.toml README.md hatch_build.py ./
COPY mediad ./mediad
COPY schema ./schema
COPY --from=page /src/mediad/static ./mediad/static
RUN pip install --no-cache-dir .

# An unprivileged user of its own runs mediad and the embedded PostgreSQL and Redis (which
# then need no user switch); the state dir is its, before the volume is declared, so a
# new named volume starts out owned by it.
RUN useradd --system --uid 10001 --user-group --create-home --home-dir /home/mediad \
        --shell /usr/sbin/nologin mediad \
 && install -d -o mediad -g mediad -m 0750 /var/lib/mediad
USER mediad:mediad

ENV MEDIAD_STORAGE_STATE_DIR=/var/lib/mediad \
    MEDIAD_SERVER_HOST=0.0.0.0
VOLUME /var/lib/mediad
EXPOSE 8080
STOPSIGNAL SIGTERM
# /health answers 200 when PostgreSQL, Redis, aria2 and the workers are up (no token
# needed); the first start creates the cluster, hence the start period.
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import os, sys, urllib.request; port = os.environ.get('MEDIAD_SERVER_PORT') or '8080'; sys.exit(urllib.request.urlopen(f'http://127.0.0.1:{port}/health', timeout=4).status != 200)"]
ENTRYPOINT ["mediad"]
CMD ["serve"]
