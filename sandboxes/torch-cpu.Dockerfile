# Sandbox image for CPU tasks that need torch (the CPU build: about 200 MB instead of several GB).
#   docker build -f sandboxes/Dockerfile.torch-cpu -t discovery-sandbox:torch-cpu sandboxes/
FROM python:3.11-slim
RUN pip install --no-cache-dir "numpy>=1.26" \
 && pip install --no-cache-dir torch==2.13.0 --index-url https://download.pytorch.org/whl/cpu \
 && mkdir -p /task /runner /candidate \
 && chmod 1777 /tmp
LABEL discovery.kind="dockerfile" discovery.python="/usr/local/bin/python3" discovery.binds="[]"
ENV PYTHONDONTWRITEBYTECODE=1
WORKDIR /tmp
USER 65534:65534
