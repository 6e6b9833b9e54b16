# The funnel image: one image for every role (`funnel topics`, `funnel worker`,
# `funnel generate`), chosen by the command. Used by docker-compose.yml. No extras: the
# embedded broker and the demo's terminal view are not needed against Apache Kafka.
FROM python:3.11-slim AS build
# a C compiler for the modules the install compiles with mypyc (setup.py); not in the image run
RUN apt-get update && apt-get install -y --no-install-recommends gcc libc6-dev \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY pyproject.toml setup.py README.md requirements.txt ./
COPY schemas ./schemas
COPY stream ./stream
# the versions of the lock file, as in `make install` and CI
RUN pip install --no-cache-dir --prefix=/install -c requirements.txt .

FROM python:3.11-slim
COPY --from=build /install /usr/local
RUN useradd --system --uid 10001 --create-home --home-dir /var/lib/funnel funnel
USER funnel
WORKDIR /var/lib/funnel
# In a container the web port must listen beyond loopback for Prometheus to scrape it.
ENV FUNNEL_WEB_BIND=0.0.0.0 \
    FUNNEL_WEB_PORT=6066 \
    FUNNEL_DATA_DIR=/var/lib/funnel \
    PYTHONUNBUFFERED=1
EXPOSE 6066 8088
ENTRYPOINT ["funnel"]
CMD ["worker"]
