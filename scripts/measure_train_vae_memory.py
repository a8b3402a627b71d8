"""Peak memory of `train_vae` on datasets of different sizes: it should not grow with them.

    python scripts/measure_train_vae_memory.py --home ~/world-models-experiments --episodes 20 200

For each size N, links the first N episodes of <home>/<dataset>-rollouts into a temporary home,
runs `python -m worldmodels.vision.train_vae` there for --seconds, and reads the process's peak
resident memory (VmHWM in /proc, Linux only) before stopping it.
"""

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from worldmodels import layout
from worldmodels.data.tf_records import list_episodes


def peak_memory_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmHWM in /proc status")


def main():
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter
    )
    parser.add_argument("--home", default=None, help="experiments home with sampled episodes")
    parser.add_argument("--dataset", default="random", help="read <home>/<dataset>-rollouts")
    parser.add_argument("--episodes", type=int, nargs="+", default=[20, 200], help="dataset sizes")
    parser.add_argument("--seconds", type=float, default=120, help="training time per size")
    parser.add_argument("--batch-size", type=int, default=256, help="train_vae --batch-size")
    args = parser.parse_args()

    paths = list_episodes(layout.rollouts(layout.resolve_home(args.home), args.dataset))
    for count in args.episodes:
        if count > len(paths):
            raise SystemExit(f"asked for {count} episodes, found {len(paths)}")
        with tempfile.TemporaryDirectory() as home:
            linked = layout.rollouts(Path(home), args.dataset)
            linked.mkdir()
            for path in paths[:count]:
                (linked / path.name).symlink_to(path)
            command = [
                sys.executable,
                "-m",
                "worldmodels.vision.train_vae",
                "--home",
                home,
                "--dataset",
                args.dataset,
                "--batch-size",
                str(args.batch_size),
            ]
            process = subprocess.Popen(
                command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
            )
            time.sleep(args.seconds)
            if process.poll() is not None:
                raise SystemExit(f"train_vae ended early:\n{process.stderr.read()[-2000:]}")
            peak = peak_memory_mib(process.pid)
            process.kill()
            process.wait()
        print(
            f"{count:5d} episodes: peak RSS {peak:7.0f} MiB after {args.seconds:.0f} s of training"
        )


if __name__ == "__main__":
    main()
