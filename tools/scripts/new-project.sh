#!/usr/bin/env bash
# Scaffolds a lib or an app with the workspace conventions:
#   tools/scripts/new-project.sh lib  <name>   -> libs/<name>  (@knet/<name>, tag type:lib)
#   tools/scripts/new-project.sh app  <name>   -> apps/<name>  (tag type:app, esbuild bundle)
set -euo pipefail
kind=${1:?usage: new-project.sh lib|app|testing <name>}
name=${2:?usage: new-project.sh lib|app|testing <name>}
case "$kind" in
  lib) dir=libs/$name tag=type:lib ;;
  testing) dir=libs/$name tag=type:testing ;;
  app) dir=apps/$name tag=type:app ;;
  *) echo "new-project: kind must be lib, testing or app, not '$kind'" >&2; exit 2 ;;
esac
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
[ -e "$dir" ] && { echo "new-project: $dir already exists" >&2; exit 1; }
mkdir -p "$dir/src" "$dir/test"
if [ "$kind" = app ]; then
  cat > "$dir/package.json" <<JSON
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
  cat > "$dir/tsconfig.app.json" <<JSON
{
  "extends": "./tsconfig.json",
  "compilerOptions": { "declaration": false, "emitDeclarationOnly": false, "noEmit": true },
  "include": ["src/**/*.ts"],
  "exclude": ["src/**/*.spec.ts"]
}
JSON
  printf "console.log('%s');\n" "$name" > "$dir/src/main.ts"
else
  cat > "$dir/package.json" <<JSON
{
  "name": "@knet/$name",
  "version": "0.0.0",
  "private": true,
  "main": "./src/index.ts",
  "types": "./src/index.ts",
  "nx": { "tags": ["$tag"] }
}
JSON
  echo "export {};" > "$dir/src/index.ts"
fi
cat > "$dir/tsconfig.json" <<JSON
{
  "extends": "../../tsconfig.base.json",
  "compilerOptions": { "outDir": "../../dist/out-tsc/$dir", "tsBuildInfoFile": "../../dist/out-tsc/$dir/tsconfig.tsbuildinfo", "declaration": true, "emitDeclarationOnly": true, "types": ["node", "jest"] },
  "include": ["src/**/*.ts", "test/**/*.ts"]
}
JSON
cat > "$dir/jest.config.cjs" <<'JS'
/** @type {import('jest').Config} */
module.exports = { ...require('../../jest.preset.cjs'), displayName: require('./package.json').name };
JS
cat > "$dir/eslint.config.mjs" <<'JS'
import base from '../../eslint.config.mjs';

export default [...base];
JS
echo "created $dir ($tag)"
