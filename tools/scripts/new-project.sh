#!/usr/bin/env bash
# Scaffolds a project with the workspace conventions (see CONTRIBUTING.md):
#   tools/scripts/new-project.sh app     <name> ["what it does"]  -> apps/<name>   (type:app, esbuild bundle)
#   tools/scripts/new-project.sh lib     <name>                   -> libs/<name>   (@knet/<name>, type:lib)
#   tools/scripts/new-project.sh testing <name>                   -> libs/<name>   (type:testing)
#   tools/scripts/new-project.sh e2e     <suite>                  -> e2e/<suite>   (type:e2e: a suite spanning apps)
#   tools/scripts/new-project.sh bench   <suite>                  -> bench/<suite> (type:bench: npm run bench -- <suite>)
# An app gets the skeleton every app follows (tools/templates/app): main.ts wiring only,
# options.ts with validate, a pure plan.ts with table tests, reconcile.ts on a narrow port with
# tests on a fake, metrics.ts, a README; it typechecks and its tests pass as generated.
# Then run `npm install` (links the new workspace package) and commit package-lock.json.
# KNET_WORKSPACE=<dir> scaffolds into another workspace (the generator's own test uses it).
set -euo pipefail
usage="usage: new-project.sh app|lib|testing|e2e|bench <name> [\"what it does\"]"
kind=${1:?$usage}
name=${2:?$usage}
description=${3:-}
if ! [[ "$name" =~ ^[a-z][a-z0-9]*(-[a-z0-9]+)*$ ]]; then
  echo "new-project: name '$name' must be lowercase words joined by '-' (e.g. wg-agent)" >&2
  exit 2
fi
case "$kind" in
  lib) dir=libs/$name tag=type:lib ;;
  testing) dir=libs/$name tag=type:testing ;;
  app) dir=apps/$name tag=type:app ;;
  e2e) dir=e2e/$name tag=type:e2e ;;
  bench) dir=bench/$name tag=type:bench ;;
  *) echo "new-project: kind must be app, lib, testing, e2e or bench, not '$kind' ($usage)" >&2; exit 2 ;;
esac
templates="$(cd "$(dirname "$0")/.." && pwd)/templates"
root=${KNET_WORKSPACE:-$(cd "$(dirname "$0")/../.." && pwd)}
cd "$root"
[ -e "$dir" ] && { echo "new-project: $dir already exists" >&2; exit 1; }
mkdir -p "$dir"

lib_package() {
  cat >"$dir/package.json" <<JSON
{
  "name": "@knet/$name",
  "version": "0.0.0",
  "private": true,
  "main": "./src/index.ts",
  "types": "./src/index.ts",
  "nx": { "tags": ["$tag"] }
}
JSON
}
tsconfig() { # include globs
  cat >"$dir/tsconfig.json" <<JSON
{
  "extends": "../../tsconfig.base.json",
  "compilerOptions": {
    "outDir": "../../dist/out-tsc/$dir",
    "tsBuildInfoFile": "../../dist/out-tsc/$dir/tsconfig.tsbuildinfo",
    "declaration": true,
    "emitDeclarationOnly": true,
    "types": ["node", "jest"]
  },
  "include": [$1]
}
JSON
}
jest_config() {
  cat >"$dir/jest.config.cjs" <<'JS'
/** @type {import('jest').Config} */
module.exports = { ...require('../../jest.preset.cjs'), displayName: require('./package.json').name };
JS
}
eslint_config() {
  cat >"$dir/eslint.config.mjs" <<'JS'
import base from '../../eslint.config.mjs';

export default [...base];
JS
}

case "$kind" in
  app)
    env=$(echo "$name" | tr 'a-z-' 'A-Z_')
    metric=$(echo "$name" | tr '-' '_')
    desc=${description:-"$name: describe in one sentence what it keeps in place."}
    # Escape for sed's replacement (\, & and the | delimiter).
    desc_sed=$(printf '%s' "$desc" | sed -e 's/[\\&|]/\\&/g')
    cp -R "$templates/app/." "$dir/"
    find "$dir" -type f -exec sed -i \
      -e "s|@@APP@@|$name|g" -e "s|@@ENV@@|$env|g" -e "s|@@METRIC@@|$metric|g" \
      -e "s|@@DESCRIPTION@@|$desc_sed|g" {} +
    cat >"$dir/package.json" <<JSON
{
  "name": "@knet/$name",
  "version": "0.0.0",
  "private": true,
  "nx": {
    "tags": ["$tag"],
    "targets": {
      "build": { "options": { "outputPath": "dist/apps/$name" } }
    }
  }
}
JSON
    cat >"$dir/tsconfig.app.json" <<JSON
{
  "extends": "./tsconfig.json",
  "compilerOptions": { "declaration": false, "emitDeclarationOnly": false, "noEmit": true },
  "include": ["src/**/*.ts"],
  "exclude": ["src/**/*.spec.ts"]
}
JSON
    tsconfig '"src/**/*.ts", "test/**/*.ts"'
    jest_config
    eslint_config
    ;;
  lib | testing)
    mkdir -p "$dir/src"
    lib_package
    echo "export {};" >"$dir/src/index.ts"
    tsconfig '"src/**/*.ts", "test/**/*.ts"'
    jest_config
    eslint_config
    echo "new-project: add @knet/$name to tsconfig.base.json's paths and to the alias pattern in jest.preset.cjs" >&2
    echo "new-project: jest finds no test yet; the project's first src/*.spec.ts makes 'npm test' pass again" >&2
    ;;
  e2e)
    mkdir -p "$dir/test"
    lib_package
    # Suites are named like the existing ones (@knet/e2e-tower), apart from the apps and libs.
    sed -i '/"main"\|"types"/d; s|"@knet/'"$name"'"|"@knet/e2e-'"$name"'"|' "$dir/package.json"
    tsconfig '"test/**/*.ts"'
    jest_config
    eslint_config
    echo "new-project: add test/*.test.ts (run the apps with the test kit's appBundle(name)); until then jest finds no test" >&2
    ;;
  bench)
    lib_package
    # Benches are named like the existing ones (@knet/bench-tower), apart from the apps and libs.
    sed -i '/"main"\|"types"/d; s|"@knet/'"$name"'"|"@knet/bench-'"$name"'"|' "$dir/package.json"
    tsconfig '"**/*.ts"'
    eslint_config
    echo "new-project: write $dir/main.ts (resultEmitter from @knet/testing: one JSON line per metric, the peer measured in the same run; see bench/tower/main.ts)" >&2
    ;;
esac
# The placeholders' lengths changed: format what was generated.
if [ -x "$root/node_modules/.bin/prettier" ]; then "$root/node_modules/.bin/prettier" --write --log-level=warn "$dir"; fi
echo "created $dir ($tag); now run 'npm install' and commit package-lock.json"
