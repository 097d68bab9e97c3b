# mediad with its tools and the servers of its embedded default.
#   docker build -t mediad .
#   docker run -p 8080:8080 -v mediad:/var/lib/mediad -e MEDIAD_SERVER_API_TOKENS=… mediad
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

ENV MEDIAD_STORAGE_STATE_DIR=/var/lib/mediad \
    MEDIAD_SERVER_HOST=0.0.0.0
VOLUME /var/lib/mediad
EXPOSE 8080
STOPSIGNAL SIGTERM
HEALTHCHECK --interval=30s --timeout=5s CMD python -c "import urllib.request,sys; sys.exit(urllib.request.urlopen('http://127.0.0.1:8080/health').status != 200)"
ENTRYPOINT ["mediad"]
CMD ["serve"]
