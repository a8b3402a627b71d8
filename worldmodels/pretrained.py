"""Share trained agents: export one from a home into an archive, install one into a home.

    python -m worldmodels.pretrained export --generation best --out agent.tar.gz
    python -m worldmodels.pretrained install https://example.org/agent.tar.gz   # or a path

An agent archive (.tar.gz) holds exactly what `evaluate`, `render` and `sample_policy
--policy controller` read: the latest VAE and MDN-RNN checkpoints and one controller
generation, in the experiments-home layout. `export` writes `<archive>.sha256` next to it;
`install` fetches that file from beside the archive (or takes `--sha256`) and refuses an
archive whose checksum differs. Installing is all or nothing: the archive is checked and
unpacked into a temporary folder first, then moved into the home; a failed or interrupted
install leaves the home as it was. `pretrained.sh` wraps `install`.
"""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path

from worldmodels import layout
from worldmodels.agent_archive import InstallError, install_agent
from worldmodels.cli import add_home_argument


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter
    )
    commands = parser.add_subparsers(dest="command", required=True)
    install = commands.add_parser(
        "install",
        help="install an agent archive into a home",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    install.add_argument("source", nargs="?", help="http(s) URL or path of an agent .tar.gz")
    install.add_argument("--sha256", help="expected checksum; default: read <source>.sha256")
    export = commands.add_parser(
        "export",
        help="export the agent of a home as an archive",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    export.add_argument("--generation", default="best", help="N, max or best")
    export.add_argument("--out", default="agent.tar.gz", help="archive to write")
    for sub in (install, export):
        add_home_argument(sub)
    args = parser.parse_args(argv)
    home = layout.resolve_home(args.home)

    if args.command == "export":
        from worldmodels.agent_archive import export_agent
        from worldmodels.control.generations import load_agent_controller

        generation = load_agent_controller(home, args.generation).generation
        try:
            checksum = export_agent(home, generation, Path(args.out))
        except (ValueError, InstallError) as error:
            sys.exit(f"error: {error}")
        print(
            f"exported generation {generation} of {home} to {args.out} (sha256 {checksum}, "
            f"also in {args.out}.sha256)"
        )
        return
    if not args.source:
        sys.exit(
            "error: no agent archive given. The repository's pretrained.sh installs the agent "
            "shipped in its pretrained/ folder without one; otherwise pass the URL or path of "
            "an archive (bash pretrained.sh https://…/agent.tar.gz), or train an agent "
            "(python -m worldmodels.pipeline --preset paper) and share it with "
            "'python -m worldmodels.pretrained export'"
        )
    try:
        installed = install_agent(args.source, home, args.sha256)
    except InstallError as error:
        sys.exit(f"error: {error}; {home} is unchanged")
    print(
        f"installed {len(installed)} files from {args.source} into {home}; try: "
        f"python -m worldmodels.control.evaluate --home {shlex.quote(str(home))} "
        "--generation best --episodes 4"
    )


if __name__ == "__main__":
    main()
