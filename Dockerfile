# mediad with its tools and the servers of its embedded default.
#   docker build -t mediad .
#   docker run -p 8080:8080 -v mediad:/var/lib/mediad -e MEDIAD_SERVER_API_TOKENS=… mediad
# It listens on 0.0.0.0, so it refuses to start without API tokens (or
# MEDIAD_SERVER_ALLOW_ANONYMOUS=true).
FROM python:3.11-slim-bookworm

RUN apt-get update \
 && apt-get install -y --no-install-recommends ffmpeg aria2 postgresql redis-server \
 && rm -rf /var/lib/apt/lists/*

WORKDIR /opt/mediad
COPY pyproject.toml README.md ./
COPY mediad ./mediad
COPY schema ./schema
RUN pip install --no-cache-dir .

ENV MEDIAD_STORAGE_STATE_DIR=/var/lib/mediad \
    MEDIAD_SERVER_HOST=0.0.0.0
VOLUME /var/lib/mediad
EXPOSE 8080
STOPSIGNAL SIGTERM
HEALTHCHECK --interval=30s --timeout=5s CMD python -c "import urllib.request,sys; sys.exit(urllib.request.urlopen('http://127.0.0.1:8080/health').status != 200)"
ENTRYPOINT ["mediad"]
CMD ["serve"]
