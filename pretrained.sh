#!/usr/bin/env bash
# Install a pretrained World Models agent (VAE, MDN-RNN, controller) into the experiments home.
#
#   bash pretrained.sh [URL_OR_PATH] [--sha256 HEX] [--home DIR]
#
# Without URL_OR_PATH it installs the agent shipped in pretrained/agent.tar.gz, if any.
# Downloads the .tar.gz (with a progress bar), checks it against URL_OR_PATH.sha256 (or
# --sha256), refuses members outside the agent's folders, and unpacks all or nothing. Run it
# in the environment the project is installed in. Share your own agent with:
#   python -m worldmodels.pretrained export --generation best --out agent.tar.gz
set -euo pipefail
# Without a URL or path: the agent shipped in this repository, when there is one.
shipped="$(cd "$(dirname "$0")" && pwd)/pretrained/agent.tar.gz"
if [[ ( $# -eq 0 || "$1" == --* ) && -f "$shipped" ]]; then
    set -- "$shipped" "$@"
fi
exec python -m worldmodels.pretrained install "$@"
