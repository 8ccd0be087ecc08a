# ecgcnn on CPU: the REST service by default (`ecgcnn serve`), any other command by name
# (`docker run IMAGE train ...`). Build and run: see deploy/README.md.
#
#   docker build -t ecgcnn:latest .                                        # model mounted at /models
#   docker build --build-context model=runs/demo/fold_0 -t ecgcnn:demo .   # model baked into /models

# The model folder copied into /models: by default just deploy/README.md; `--build-context model=DIR`
# (BuildKit) replaces this stage with DIR, so the image carries DIR's checkpoint.
FROM scratch AS model
COPY deploy/README.md /README.md

FROM python:3.12-slim AS build
# The Makefile pins the same version; keep the two in step (tests/test_deploy.py checks).
ARG TORCH_VERSION=2.13.0
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
# torch first, from the CPU index: the package asks only for torch>=2.2, which this satisfies,
# so pip keeps it; from PyPI it would pull a CUDA build of several GB.
RUN pip install --no-cache-dir --index-url https://download.pytorch.org/whl/cpu "torch==${TORCH_VERSION}"
WORKDIR /src
COPY pyproject.toml README.md ./
COPY src ./src
RUN pip install --no-cache-dir . \
    && python -c "import torch; assert not torch.version.cuda, torch.version.cuda"

FROM python:3.12-slim AS runtime
ARG CHECKPOINT=/models/checkpoint.pt
# One intra-op thread per process: the service scales with --workers and replicas, not threads.
# Writable paths all live under /tmp, so the root filesystem can be read-only.
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PATH=/opt/venv/bin:$PATH \
    OMP_NUM_THREADS=1 \
    MKL_NUM_THREADS=1 \
    ECGCNN_CHECKPOINT=${CHECKPOINT} \
    ECGCNN_CACHE=/tmp/ecgcnn-cache \
    MPLCONFIGDIR=/tmp/matplotlib
RUN groupadd --system --gid 10001 ecgcnn \
    && useradd --system --no-log-init --uid 10001 --gid ecgcnn --create-home --home-dir /home/ecgcnn ecgcnn
COPY --from=build /opt/venv /opt/venv
COPY --from=model / /models/
WORKDIR /home/ecgcnn
USER 10001:10001
EXPOSE 8000
# /healthz of the `ecgcnn serve` running here, on its own --host/--port; healthy when the
# container runs another command (train, download), which serves nothing.
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python", "-m", "ecgcnn.healthcheck"]
ENTRYPOINT ["ecgcnn"]
CMD ["serve", "--host", "0.0.0.0", "--port", "8000"]
