FROM python:3.11-slim
WORKDIR /app
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
COPY pyproject.toml README.md ./
COPY hub ./hub
COPY connectors ./connectors
COPY mappings ./mappings
COPY workers ./workers
COPY s2s ./s2s
COPY emulators ./emulators
COPY bench ./bench
RUN pip install --no-cache-dir ".[ops]"
RUN useradd --create-home s2s && mkdir -p /app/var && chown s2s /app/var
USER s2s
ENTRYPOINT ["s2s"]
CMD ["--help"]
