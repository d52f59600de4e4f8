# syntax=docker/dockerfile:1
# Semantic's container image: `semantic serve` on 0.0.0.0:8080, as a non-root user, with agents' caches
# (and the generated demo model, when no --model is given) on a volume at /var/cache/semantic.
#   docker build -t semantic:0.1.0 .
#   docker run -p 8080:8080 -v semantic-cache:/var/cache/semantic semantic:0.1.0
#   docker run … -v /srv/models:/models:ro semantic:0.1.0 --port 8080 --cache-dir /var/cache/semantic/agents --model /models/name.gguf
# Arguments replace CMD only: the ENTRYPOINT keeps `serve --host 0.0.0.0`. Kubernetes: ops/k8s/.
# CI cannot pull base images, so it lints this file (test/unit/ops-container.test.ts) instead of building it.

# Build: the README's two steps (npm install builds the native addon, npm run build the TypeScript),
# then the dev packages go. Both stages use /app: the addon is linked to the llama.cpp libraries by
# absolute path (deps/llama-libs.gypi, the library's rpath).
FROM node:20-bookworm AS build
RUN apt-get update \
  && apt-get install -y --no-install-recommends g++ git make python3 \
  && rm -rf /var/lib/apt/lists/*
# node-gyp compiles against the headers this image's Node ships in /usr/local/include/node, instead
# of downloading them (Debian's own Node finds them by itself; the official build does not).
ENV npm_config_nodedir=/usr/local
WORKDIR /app
COPY . .
RUN npm install --no-audit --no-fund \
  && npm run build \
  && npm prune --omit=dev --no-audit --no-fund

# Run: Node's slim image has the C++ runtime the addon and llama.cpp need (libstdc++, libgcc_s) and
# no compiler, git or curl.
FROM node:20-bookworm-slim
ENV NODE_ENV=production \
  XDG_CACHE_HOME=/var/cache
RUN groupadd --system --gid 10001 semantic \
  && useradd --system --uid 10001 --gid semantic --home-dir /var/cache/semantic --no-create-home --shell /usr/sbin/nologin semantic \
  && mkdir -p /var/cache/semantic \
  && chown semantic:semantic /var/cache/semantic
WORKDIR /app
COPY --from=build /app/package.json ./
COPY --from=build /app/dist ./dist
COPY --from=build /app/node_modules ./node_modules
COPY --from=build /app/deps ./deps
COPY --from=build /app/build/Release/semantic_llama.node ./build/Release/
USER 10001:10001
# Agents' cache files (--cache-dir below) and the demo model ($XDG_CACHE_HOME/semantic/models).
VOLUME ["/var/cache/semantic"]
EXPOSE 8080
# Liveness: the event loop answers (docs/operations.md, "Probes"). Node's fetch, as the slim image has
# no curl. It assumes port 8080: change it with --port.
HEALTHCHECK --interval=10s --timeout=5s --start-period=30s --retries=3 \
  CMD ["node", "-e", "fetch('http://127.0.0.1:8080/health/live').then((r) => process.exit(r.ok ? 0 : 1), () => process.exit(1))"]
# SIGTERM starts the drain (node is PID 1 and handles it; the drain bounds itself by --drain-timeout):
# give `docker stop` more time than that, e.g. docker stop -t 45.
STOPSIGNAL SIGTERM
ENTRYPOINT ["node", "/app/dist/cli/main.js", "serve", "--host", "0.0.0.0"]
CMD ["--port", "8080", "--cache-dir", "/var/cache/semantic/agents"]
