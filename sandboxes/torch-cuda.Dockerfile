# Sandbox image for GPU tasks: torch with its bundled CUDA libraries. The host needs the NVIDIA driver
# and the NVIDIA Container Toolkit; the Docker backend passes one GPU per evaluation (device_requests).
#   docker build -f sandboxes/Dockerfile.torch-cuda -t discovery-sandbox:torch-cuda sandboxes/
FROM python:3.11-slim
RUN pip install --no-cache-dir "numpy>=1.26" torch==2.13.0 \
 && mkdir -p /task /runner /candidate \
 && chmod 1777 /tmp
LABEL discovery.kind="dockerfile" discovery.python="/usr/local/bin/python3" discovery.binds="[]" discovery.gpu="1"
# The toolkit mounts the driver into the container when these are set.
ENV PYTHONDONTWRITEBYTECODE=1 NVIDIA_DRIVER_CAPABILITIES=compute,utility
WORKDIR /tmp
USER 65534:65534
