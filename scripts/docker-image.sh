#!/usr/bin/env bash
# Build reckon's image (default name reckon:latest) from the binaries `cargo build --release`
# made: stage the build context in target/docker (the Dockerfile, the entry point, the stripped
# binaries, /opt/reckon's servers), make or find the Debian base (scripts/docker-base.sh), then
# `docker build`. Unchanged inputs reuse every cached layer.
set -euo pipefail
cd "$(dirname "$0")/.."
IMAGE=${1:-reckon:latest}
ctx=target/docker
for b in reckon reckon-stdio-client; do
  [ -x "target/release/$b" ] || { echo "docker-image: target/release/$b missing; run cargo build --release" >&2; exit 1; }
done
[ -d /opt/reckon ] || { echo "docker-image: /opt/reckon missing; run scripts/setup.sh" >&2; exit 1; }
mkdir -p "$ctx"
cp Dockerfile "$ctx/Dockerfile"
cp docker/entrypoint.sh "$ctx/entrypoint.sh"
for b in reckon reckon-stdio-client; do
  # Without debug info: a tenth of the size, the same code.
  strip --strip-debug -o "$ctx/$b.new" "target/release/$b"
  if cmp -s "$ctx/$b.new" "$ctx/$b"; then rm "$ctx/$b.new"; else mv "$ctx/$b.new" "$ctx/$b"; fi
done
mkdir -p "$ctx/opt-reckon"
cp -a --update /opt/reckon/. "$ctx/opt-reckon/"
base=$(scripts/docker-base.sh)
echo "docker-image: building $IMAGE on $base" >&2
old=$(docker image inspect -f '{{.Id}}' "$IMAGE" 2>/dev/null || true)
docker build --build-arg "BASE=$base" -t "$IMAGE" "$ctx" >&2
# The image this one replaced, if nothing else uses it (by its exact id, never by a pattern).
new=$(docker image inspect -f '{{.Id}}' "$IMAGE")
if [ -n "$old" ] && [ "$old" != "$new" ]; then
  docker image rm "$old" >/dev/null 2>&1 || true
fi
docker image inspect -f '{{.Id}} {{.Size}}' "$IMAGE" | awk -v i="$IMAGE" '{printf "docker-image: %s is %s (%.0f MB)\n", i, $1, $2/1e6}' >&2
