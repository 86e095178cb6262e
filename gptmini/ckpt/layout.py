"""The layout of a run folder on disk, and what makes a folder one, in one place.

    run_dir/
      config.json, metrics.jsonl
      step-000500/  model.safetensors  optimizer.safetensors  manifest.json
      latest        (text: the folder name of the newest checkpoint)
      best          (text: the folder name of the best-by-val-loss checkpoint)
"""

from __future__ import annotations

from pathlib import Path

CONFIG_FILE = "config.json"  # the options the run trains with (train.setup.write_run_config)
METRICS_FILE = "metrics.jsonl"  # one line per event (metrics.MetricsWriter)
FORMAT_VERSION = 1
MANIFEST = "manifest.json"
MODEL_FILE = "model.safetensors"
OPTIM_FILE = "optimizer.safetensors"
POINTERS = ("latest", "best")
_PREFIX = "step-"


def checkpoint_name(step: int) -> str:
    return f"{_PREFIX}{step:06d}"



def is_run_folder(path: Path) -> bool:
    """A folder a run wrote: it holds the run's ``config.json`` or ``metrics.jsonl``, or a checkpoint."""
    return ((path / CONFIG_FILE).is_file() or (path / METRICS_FILE).is_file()
            or any((p / MANIFEST).is_file() for p in path.glob(f"{_PREFIX}*")))


def find_run_folders(*roots: str | Path) -> list[Path]:
    """The run folders among ``roots`` and their children (one level), oldest first, each once."""
    found: dict[Path, float] = {}
    for root in roots:
        root = Path(root).expanduser()
        candidates = [root] + (sorted(p for p in root.iterdir() if p.is_dir()) if root.is_dir() else [])
        for path in candidates:
            if path.is_dir() and is_run_folder(path):
                metrics = path / METRICS_FILE
                found.setdefault(path.resolve(), (metrics if metrics.is_file() else path).stat().st_mtime)
    return sorted(found, key=lambda p: found[p])
