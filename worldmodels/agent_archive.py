"""Agent archives: export a home's agent into one (.tar.gz and its checksum), install one into
a home, all or nothing (`worldmodels.pretrained`, its command, says what an archive holds)."""

from __future__ import annotations

import hashlib
import os
import shutil
import tarfile
import tempfile
import urllib.error
import urllib.request
from pathlib import Path

from worldmodels import layout
from worldmodels.progress import progress


class InstallError(RuntimeError):
    """The archive could not be installed; the home is unchanged."""


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        for block in iter(lambda: file.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def export_agent(home: Path, generation: int, out: Path) -> str:
    """Writes the agent of `home` to the .tar.gz `out` and its checksum to `out`.sha256.

    The archive holds the weights of the latest VAE and MDN-RNN checkpoints (no optimizer
    state: a third of the size; no MDN-RNN for a V-only agent) with each run's run.json (the
    VAE's latent type, the MDN-RNN's kind and sizes), control/run.json (what the controller
    reads and outputs) and controller `generation` (without optimizer.pkl).
    Returns the checksum.
    """
    from worldmodels.control.generations import controller_spec
    from worldmodels.world_model import (
        WorldModel,
        require_trained_models,
        write_world_model_weights,
    )

    spec = controller_spec(home)
    require_trained_models(home, spec.uses_memory)
    world_model = WorldModel(home, with_memory=spec.uses_memory)
    out.parent.mkdir(parents=True, exist_ok=True)
    temporary = out.with_name(f".{out.name}.{os.getpid()}.tmp")
    with tempfile.TemporaryDirectory() as staging, tarfile.open(temporary, "w:gz") as archive:
        for path in write_world_model_weights(home, world_model, Path(staging)):
            archive.add(path, arcname=str(path.relative_to(staging)))
        for path in layout.generation(home, generation).iterdir():
            if path.name != "optimizer.pkl":
                archive.add(path, arcname=str(path.relative_to(home)))
        if layout.control_run_file(home).exists():
            archive.add(
                layout.control_run_file(home),
                arcname=str(layout.control_run_file(home).relative_to(home)),
            )
    os.replace(temporary, out)
    checksum = sha256_of(out)
    Path(f"{out}.sha256").write_text(f"{checksum}  {out.name}\n")
    return checksum


def fetch(source: str, destination: Path, what: str) -> None:
    """Copies a local path, or downloads an http(s) URL with a progress bar, to `destination`."""
    if not source.startswith(("http://", "https://")):
        if not Path(source).is_file():
            raise InstallError(f"{what}: no file at {source}")
        shutil.copyfile(source, destination)
        return
    try:
        with (
            urllib.request.urlopen(source, timeout=30) as response,
            open(destination, "wb") as file,
        ):
            size = int(response.headers.get("Content-Length") or 0) or None
            with progress(total=size, unit="B", unit_scale=True, desc=f"downloading {what}") as bar:
                for block in iter(lambda: response.read(1 << 16), b""):
                    file.write(block)
                    bar.update(len(block))
    except (urllib.error.URLError, OSError) as error:
        raise InstallError(f"{what}: could not download {source}: {error}") from None
    if size is not None and destination.stat().st_size != size:
        raise InstallError(f"{what}: the download from {source} ended early")


def install_agent(source: str, home: Path, sha256: str | None = None) -> list[str]:
    """Installs the agent archive at `source` (URL or path) into `home`; returns what it added.

    Raises InstallError with what went wrong, leaving `home` unchanged (absent, if it was).
    """
    created = [folder for folder in (home, *home.parents) if not folder.exists()]
    home.mkdir(parents=True, exist_ok=True)
    try:
        return _install(source, home, sha256)
    except InstallError:
        for folder in created:  # innermost first; only the folders made for this install
            folder.rmdir()
        raise


def _install(source: str, home: Path, sha256: str | None) -> list[str]:
    with tempfile.TemporaryDirectory(dir=home, prefix=".install-") as staging_name:
        staging = Path(staging_name)
        archive_path = staging / "agent.tar.gz"
        fetch(source, archive_path, "archive")
        if sha256 is None:
            fetch(f"{source}.sha256", staging / "agent.sha256", "checksum")
            sha256 = (staging / "agent.sha256").read_text().split()[0]
        actual = sha256_of(archive_path)
        if actual != sha256.lower():
            raise InstallError(f"checksum mismatch for {source}: expected {sha256}, got {actual}")
        unpacked = staging / "unpacked"
        unpacked.mkdir()
        try:
            with tarfile.open(archive_path, "r:gz") as archive:
                for member in archive.getmembers():
                    parts = Path(member.name).parts
                    if (
                        member.name.startswith("/")
                        or ".." in parts
                        or not parts
                        or parts[0] not in layout.AGENT_PARTS
                        or not (member.isfile() or member.isdir())
                    ):
                        raise InstallError(
                            f"{source}: refusing archive member {member.name!r}, which is not a "
                            f"plain file under {', '.join(layout.AGENT_PARTS)}"
                        )
                archive.extractall(unpacked, filter="data")
        except (tarfile.TarError, EOFError, OSError) as error:
            raise InstallError(f"{source} is not a readable agent archive: {error}") from None
        installed = sorted(
            str(path.relative_to(unpacked)) for path in unpacked.rglob("*") if path.is_file()
        )
        generations = layout.generations(Path()).as_posix()  # relative to the home
        if not any(name.startswith(f"{generations}/") for name in installed):
            raise InstallError(f"{source} holds no controller generation")
        for path in sorted(unpacked.rglob("*")):
            if path.is_file():
                target = home / path.relative_to(unpacked)
                if target.exists():
                    raise InstallError(
                        f"{target} exists already; install into an empty --home, or move it aside"
                    )
        for path in sorted(unpacked.rglob("*")):
            if path.is_file():
                target = home / path.relative_to(unpacked)
                target.parent.mkdir(parents=True, exist_ok=True)
                os.replace(path, target)
    return installed
