#!/bin/bash
# Like upstream's runner-scripts/entrypoint.sh: on every start, copy the
# bundled ComfyUI and custom nodes into the user's home without overwriting
# anything there, run an optional user pre-start script, then start ComfyUI.
# Unlike upstream's, a command given to the container runs instead of ComfyUI
# (`layerfold run IMAGE -- python3 -c ...`, `podman run IMAGE python3 ...`).
set -e
BUNDLE=/default-comfyui-bundle
cd "$HOME"
mkdir -p "$HOME/ComfyUI"
# -n: never overwrite what the user has (models, custom nodes, edits).
cp -rn "$BUNDLE/ComfyUI/." "$HOME/ComfyUI/"
if [ -f "$HOME/user-scripts/pre-start.sh" ]; then
  echo "[entrypoint] running $HOME/user-scripts/pre-start.sh"
  chmod +x "$HOME/user-scripts/pre-start.sh"
  source "$HOME/user-scripts/pre-start.sh"
fi
# Custom nodes install their extra requirements into ~/.local (a volume).
export PIP_USER=true
export PATH="${PATH}:${HOME}/.local/bin"
export PYTHONPYCACHEPREFIX="${HOME}/.cache/pycache"
if [ "$#" -gt 0 ]; then
  exec "$@"
fi
echo "[entrypoint] starting ComfyUI: python3 ./ComfyUI/main.py --listen --port 8188 ${CLI_ARGS}"
# CLI_ARGS is split on purpose, as upstream does.
# shellcheck disable=SC2086
exec python3 ./ComfyUI/main.py --listen --port 8188 ${CLI_ARGS}
