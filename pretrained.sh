#!/usr/bin/env bash
# Install a pretrained World Models agent (VAE, MDN-RNN, controller) into the experiments home.
#
#   bash pretrained.sh URL_OR_PATH [--sha256 HEX] [--home DIR]
#
# Downloads the .tar.gz (with a progress bar), checks it against URL_OR_PATH.sha256 (or
# --sha256), refuses members outside the agent's folders, and unpacks all or nothing. Run it
# in the environment the project is installed in. Share your own agent with:
#   python -m worldmodels.pretrained export --generation best --out agent.tar.gz
set -euo pipefail
exec python -m worldmodels.pretrained install "$@"
