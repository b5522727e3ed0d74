#!/bin/sh
# Set-up of the end-to-end tests (a CTest fixture):
#   setup.sh model SRC_DIR OUT_DIR TURBINE   the tiny test model -> OUT_DIR/tiny-model
#   setup.sh npm   SRC_DIR OUT_DIR           the tests and the pinned openai client -> OUT_DIR
#                                            (npm ci from the registry, per package-lock.json)
set -eu
what=$1 src=$2 out=$3
mkdir -p "$out"
case "$what" in
  model)
    turbine=$4
    if [ ! -f "$out/tiny-model/model.safetensors" ]; then
      rm -rf "$out/tiny-model.tmp"
      "$turbine" make-model --preset tiny --format hf --dtype f32 --seed 0 --out "$out/tiny-model.tmp"
      rm -rf "$out/tiny-model"
      mv "$out/tiny-model.tmp" "$out/tiny-model"
    fi
    ;;
  npm)
    cp "$src/package.json" "$src/package-lock.json" "$src"/*.mjs "$out/"
    cd "$out"
    if [ ! -f node_modules/openai/package.json ] || ! cmp -s package-lock.json node_modules/.turbine-lock; then
      npm ci --no-audit --no-fund --loglevel=error
      cp package-lock.json node_modules/.turbine-lock
    fi
    ;;
  *)
    echo "setup.sh: unknown step '$what' (model | npm)" >&2
    exit 2
    ;;
esac
