# The assistants-audit image: the proxy (default command), and the emulator and demo traffic
# for the docker-compose `demo` profile.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /src
COPY pyproject.toml README.md ./
COPY proxy ./proxy
COPY emulator ./emulator
COPY analytics ./analytics
COPY dashboards ./dashboards
COPY bench ./bench
RUN pip install . && rm -rf /src

RUN useradd --system --uid 10001 --home-dir /data audit && mkdir -p /data && chown audit /data
USER audit
WORKDIR /data

# Listen on all interfaces inside the container; the audit store lives in the /data volume.
ENV ASSISTANTS_AUDIT_LISTEN=0.0.0.0:8080 \
    ASSISTANTS_AUDIT_ADMIN_LISTEN=0.0.0.0:9464 \
    ASSISTANTS_AUDIT_STORE=/data/audit

EXPOSE 8080 9464
ENTRYPOINT ["assistants-audit"]
CMD ["serve"]
