# fleet-sla image: the exporter and the alert receiver share one Python image.
FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY exporter ./exporter
COPY receiver ./receiver
COPY simulator ./simulator
COPY fleet_common ./fleet_common
RUN pip wheel --no-cache-dir --wheel-dir /wheels .

FROM python:3.11-slim
RUN useradd --system --uid 10001 --home-dir /var/lib/fleet-sla --create-home fleet
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir /wheels/*.whl && rm -rf /wheels
USER fleet
WORKDIR /var/lib/fleet-sla
EXPOSE 9470 9471
ENTRYPOINT ["fleet-exporter"]
CMD ["--config", "/etc/fleet-sla/fleet.yml"]
