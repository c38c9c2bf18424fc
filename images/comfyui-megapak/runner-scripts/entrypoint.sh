#!/bin/bash
# Like upstream's runner-scripts/entrypoint.sh (YanWenKun/ComfyUI-Docker):
# - on the first start only, copy the bundled ComfyUI, then its custom nodes,
#   into the user's home (a volume); later starts leave the user's copy alone,
#   so files the user deleted do not come back;
# - run ~/user-scripts/pre-start.sh, or put the example there on first start;
# - start ComfyUI with CLI_ARGS.
# Unlike upstream's, a command given to the container runs instead of ComfyUI
# (`podman run IMAGE python3 -c ...`).
set -e
BUNDLE=/default-comfyui-bundle/ComfyUI
cd "$HOME"

if [ ! -f "$HOME/ComfyUI/main.py" ]; then
  mkdir -p "$HOME/ComfyUI"
  # --archive keeps modes and times; --ignore-existing never overwrites what the user has.
  if rsync --archive --ignore-existing --exclude 'custom_nodes/' "$BUNDLE/" "$HOME/ComfyUI/"; then
    echo "[INFO] Setting up ComfyUI: copied the image's bundle to $HOME/ComfyUI"
  else
    echo "[ERROR] Failed to copy the ComfyUI bundle to $HOME/ComfyUI" >&2
    exit 1
  fi
else
  echo "[INFO] Using the existing ComfyUI in $HOME/ComfyUI"
fi

if [ ! -d "$HOME/ComfyUI/custom_nodes" ]; then
  mkdir -p "$HOME/ComfyUI/custom_nodes"
  if cp --archive --no-clobber "$BUNDLE/custom_nodes/." "$HOME/ComfyUI/custom_nodes/"; then
    echo "[INFO] Setting up custom nodes: copied the image's bundle to $HOME/ComfyUI/custom_nodes"
  else
    echo "[ERROR] Failed to copy the custom nodes bundle to $HOME/ComfyUI/custom_nodes" >&2
    exit 1
  fi
else
  echo "[INFO] Using the existing custom nodes in $HOME/ComfyUI/custom_nodes"
fi

if [ ! -f "$HOME/user-scripts/pre-start.sh" ]; then
  mkdir -p "$HOME/user-scripts"
  cp /runner-scripts/pre-start.sh.example "$HOME/user-scripts/pre-start.sh"
  echo "[INFO] Put an example pre-start script in $HOME/user-scripts/pre-start.sh (runs from the next start)"
else
  echo "[INFO] Running $HOME/user-scripts/pre-start.sh"
  chmod +x "$HOME/user-scripts/pre-start.sh"
  source "$HOME/user-scripts/pre-start.sh"
fi

# .pyc files in one place, in the cache volume.
export PYTHONPYCACHEPREFIX="$HOME/.cache/pycache"
# pip installs go to ~/.local (a volume): /opt/venv/pip.conf says `[install] user = true`,
# which, unlike upstream's PIP_USER=true, leaves pip list/freeze/check seeing every package.
export PATH="${PATH}:$HOME/.local/bin"
export PIP_ROOT_USER_ACTION=ignore

if [ "$#" -gt 0 ]; then
  exec "$@"
fi
echo "[INFO] Starting ComfyUI: python3 ./ComfyUI/main.py --listen --port 8188 ${CLI_ARGS}"
# CLI_ARGS is split on purpose, as upstream does.
# shellcheck disable=SC2086
exec python3 ./ComfyUI/main.py --listen --port 8188 ${CLI_ARGS}
