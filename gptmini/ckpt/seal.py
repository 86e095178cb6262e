"""Trusting a checkpoint: its files against the manifest's sizes and hashes, and the manifest against the
record of it kept inside the model file at save time."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from safetensors import SafetensorError, safe_open

from gptmini.ckpt.files import _sha256
from gptmini.ckpt.layout import (
    _PREFIX,
    FORMAT_VERSION,
    MANIFEST,
    MODEL_FILE,
    checkpoint_name,
)
from gptmini.errors import CheckpointError


def read_manifest(ckpt_dir: Path) -> dict[str, Any]:
    mpath = ckpt_dir / MANIFEST
    try:
        manifest = json.loads(mpath.read_text())
    except FileNotFoundError:
        raise CheckpointError(f"{mpath} is missing: not a complete checkpoint") from None
    except (OSError, ValueError, UnicodeDecodeError) as exc:
        raise CheckpointError(f"{mpath} is not readable JSON ({exc})") from None
    if not isinstance(manifest, dict):
        raise CheckpointError(f"{mpath} is not a checkpoint manifest")
    version = manifest.get("format_version")
    if version != FORMAT_VERSION:
        raise CheckpointError(
            f"{mpath}: unknown checkpoint format version {version!r} (this GPTMini reads version {FORMAT_VERSION})"
        )
    for key in ("files", "model_config", "step"):
        if key not in manifest:
            raise CheckpointError(f"{mpath}: manifest lacks {key!r}")
    return manifest


SEAL_KEY = "gptmini_manifest_sha256"


def _seal(manifest: dict[str, Any]) -> str:
    """The sha256 of a manifest's contents, leaving out what is only known after the files are written."""
    core = {k: v for k, v in manifest.items() if k not in ("files", "saved_at")}
    return hashlib.sha256(json.dumps(core, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def check_sealed(ckpt_dir: Path, manifest: dict[str, Any]) -> None:
    """The manifest says what was saved: its step matches the folder's name and its contents the record
    kept in the model file at save time (checkpoints from before that record only get the name check)."""
    mpath = ckpt_dir / MANIFEST
    if ckpt_dir.name.startswith(_PREFIX) and ckpt_dir.name != checkpoint_name(manifest["step"]):
        raise CheckpointError(f"{mpath} says step {manifest['step']} but the folder is {ckpt_dir.name}: "
                              f"the manifest was edited or moved; it is not trusted")
    try:
        with safe_open(str(ckpt_dir / MODEL_FILE), "pt") as fh:
            recorded = (fh.metadata() or {}).get(SEAL_KEY)
    except (SafetensorError, OSError, ValueError) as exc:
        raise CheckpointError(f"{ckpt_dir / MODEL_FILE} is not a valid safetensors file ({exc})") from None
    if recorded is not None and recorded != _seal(manifest):
        raise CheckpointError(f"{mpath} was edited after the save (it no longer matches the record kept in "
                              f"{MODEL_FILE}); it is not trusted")


def verify_checkpoint(ckpt_dir: Path, manifest: dict[str, Any] | None = None,
                      files: tuple[str, ...] | None = None) -> dict[str, Any]:
    """Check the manifest against the model file's record of it, and that the files listed (``files``:
    only these) exist with their size and hash."""
    manifest = manifest or read_manifest(ckpt_dir)
    if MODEL_FILE not in manifest["files"]:
        raise CheckpointError(f"{ckpt_dir / MANIFEST}: lists no {MODEL_FILE}")
    for fname, info in manifest["files"].items():
        if files is not None and fname not in files:
            continue
        if "/" in fname or fname.startswith("."):
            raise CheckpointError(f"{ckpt_dir / MANIFEST}: suspicious file name {fname!r}")
        fpath = ckpt_dir / fname
        if not fpath.is_file():
            raise CheckpointError(f"{fpath} is missing")
        size = fpath.stat().st_size
        if size != info.get("bytes"):
            raise CheckpointError(f"{fpath} has {size} bytes, the manifest says {info.get('bytes')} (truncated or edited)")
        if _sha256(fpath) != info.get("sha256"):
            raise CheckpointError(f"{fpath} does not match its sha256 in the manifest (corrupt or edited)")
    check_sealed(ckpt_dir, manifest)
    return manifest

