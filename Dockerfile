# One image for the API, the workers and the migrations; the command decides:
#   docker run -p 127.0.0.1:8000:8000 backprop-service      migrate SQLite in /data, then serve
#   ... backprop-service serve --workers 0 | worker | db upgrade   (see docker-compose.yml)
ARG PYTHON_IMAGE=python:3.11-slim

FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/venv
WORKDIR /app
# Dependencies first, from the pins in pyproject.toml (their one home): this layer is
# rebuilt only when the pins change, not on every source edit.
COPY pyproject.toml ./
# The image serves ONNX downloads too: the `onnx` extra's pins join the dependencies.
RUN python -c "import tomllib; p = tomllib.load(open('pyproject.toml', 'rb'))['project']; print('\n'.join(p['dependencies'] + p['optional-dependencies']['onnx']))" > /tmp/requirements.txt \
 && /opt/venv/bin/pip install --requirement /tmp/requirements.txt
COPY README.md alembic.ini ./
COPY migrations ./migrations
COPY service ./service
# Editable, so the package finds the migrations/ folder beside it in /app.
RUN /opt/venv/bin/pip install --no-deps --editable . \
 && /opt/venv/bin/python -m compileall -q service migrations
# The compiled engine's kernels, compiled here once into numba's cache, which the image
# ships writable by its user: a worker then loads them in about a second at start (a
# machine of another CPU kind compiles them there once, into the same directory).
ENV NUMBA_CACHE_DIR=/app/.numba-cache
RUN /opt/venv/bin/python -c "from service.core.compiled import warm_up; assert warm_up()"

FROM ${PYTHON_IMAGE}
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    BACKPROP_HOST=0.0.0.0 \
    BACKPROP_PORT=8000 \
    BACKPROP_DATABASE_URL=sqlite:////data/backprop.db \
    NUMBA_CACHE_DIR=/app/.numba-cache
RUN useradd --system --user-group --uid 10001 --home-dir /app --no-create-home backprop \
 && mkdir /data \
 && chown backprop:backprop /data
COPY --from=build /opt/venv /opt/venv
COPY --from=build /app /app
COPY --from=build --chown=10001:10001 /app/.numba-cache /app/.numba-cache
WORKDIR /app
# Numeric, so orchestrators can verify the user is not root.
USER 10001:10001
VOLUME ["/data"]
EXPOSE 8000
HEALTHCHECK --interval=10s --timeout=5s --start-period=30s --retries=3 CMD ["backprop", "health"]
ENTRYPOINT ["backprop"]
CMD ["serve", "--migrate"]
