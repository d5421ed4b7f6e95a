"""The daemon's data directory: layout, atomic writes, DAW-named takes with BWF chunks and manifests.

Layout under the data directory (default ``$STEMFORGE_DATA_DIR`` or ``~/.local/share/stemforge``)::

    token                       WebSocket token (mode 0600)
    journal.sqlite3             jobs, sessions, takes (see journal.py)
    sessions/<session_id>/takes/<session>_<stem>_<bpm>bpm_take<N>.wav   (+ .json recall manifest)
    sessions/<session_id>/uploads/...   audio uploaded by clients (also takes, source "uploaded")

Every file is written atomically: a temporary file in the same directory, fsync, rename over the
final name, fsync of the directory. A crash leaves either the old state or the complete new file;
never a partial file under the final name.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from daw_bridge.wav import build_bwf
from protocol.errors import InvalidArgument, InvalidAudio

log = logging.getLogger(__name__)

SAMPLE_RATE = 48_000
_SAFE = re.compile(r"[^A-Za-z0-9._-]+")


def default_data_dir() -> Path:
    env = os.environ.get("STEMFORGE_DATA_DIR")
    if env:
        return Path(env).expanduser()
    return Path.home() / ".local" / "share" / "stemforge"


def safe_name(text: str, fallback: str = "untitled") -> str:
    """A file-name component: ASCII letters, digits, ``._-``; other runs become ``-``."""
    out = _SAFE.sub("-", text).strip("-.")
    return out[:64] or fallback


def format_bpm(bpm: float) -> str:
    """``120`` -> ``"120"``, ``92.5`` -> ``"92.5"`` (no trailing zeros)."""
    return f"{bpm:.3f}".rstrip("0").rstrip(".")


def take_file_name(session: str, stem: str, bpm: float, number: int) -> str:
    return f"{safe_name(session)}_{safe_name(stem)}_{format_bpm(bpm)}bpm_take{number}.wav"


def fsync_dir(directory: Path) -> None:
    fd = os.open(str(directory), os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def new_token(nbytes: int = 32) -> str:
    """A URL-safe random token that never starts with "-", so ``--token TOKEN`` parses as an option value."""
    while True:
        token = secrets.token_urlsafe(nbytes)
        if not token.startswith("-"):
            return token


def atomic_write_bytes(path: str | Path, data: bytes, mode: int = 0o644) -> Path:
    """Write ``data`` to ``path`` atomically (temp file in the same directory, fsync, rename, fsync dir)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.parent / f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp"
    fd = os.open(str(tmp), os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    try:
        view = memoryview(data)
        while view:
            written = os.write(fd, view)
            view = view[written:]
        os.fsync(fd)
    except BaseException:
        os.close(fd)
        tmp.unlink(missing_ok=True)
        raise
    os.close(fd)
    try:
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)
    return path


@dataclass(frozen=True)
class WrittenTake:
    path: Path
    manifest_path: Path
    frames: int
    sample_rate: int
    start_sample: int
    sha256: str
    number: int
    format: str


class Storage:
    """Owns the data directory. Thread-compatible (no shared mutable state beyond the file system)."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root).expanduser().resolve()
        self.root.mkdir(parents=True, exist_ok=True)
        (self.root / "sessions").mkdir(exist_ok=True)

    # ---- layout --------------------------------------------------------------------------------
    @property
    def journal_path(self) -> Path:
        return self.root / "journal.sqlite3"

    @property
    def token_path(self) -> Path:
        return self.root / "token"

    def session_dir(self, session_id: str) -> Path:
        if safe_name(session_id) != session_id:
            raise InvalidArgument(f"invalid session id {session_id!r}")
        return self.root / "sessions" / session_id

    def takes_dir(self, session_id: str) -> Path:
        return self.session_dir(session_id) / "takes"

    def uploads_dir(self, session_id: str) -> Path:
        return self.session_dir(session_id) / "uploads"

    def remove_stale_temp_files(self) -> int:
        """Delete temp files a killed daemon left behind (never complete files: those were renamed)."""
        count = 0
        for tmp in self.root.rglob(".*.tmp"):
            try:
                tmp.unlink()
                count += 1
            except OSError as exc:
                log.warning("cannot remove stale temp file %s: %s", tmp, exc)
        if count:
            log.info("removed %d temp file(s) left by an interrupted write", count)
        return count

    def lock(self) -> int:
        """Hold ``daemon.lock`` (flock) for this process's lifetime: one daemon per data directory, or the
        journal's jobs would run twice. Returns the descriptor; closing it (or exiting) releases the lock."""
        import fcntl

        path = self.root / "daemon.lock"
        fd = os.open(str(path), os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            owner = os.pread(fd, 32, 0).decode(errors="replace").strip() or "?"
            os.close(fd)
            raise InvalidArgument(f"the data directory {self.root} is in use by another stemforge daemon "
                                  f"(pid {owner}); stop it or use --data-dir") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        return fd

    # ---- token ---------------------------------------------------------------------------------
    def load_or_create_token(self) -> str:
        """The WebSocket token: read from ``token`` or generated once (:func:`new_token`), mode 0600."""
        path = self.token_path
        if path.is_file():
            token = path.read_text().strip()
            if token:
                if path.stat().st_mode & 0o077:
                    os.chmod(path, 0o600)
                return token
        token = new_token(32)
        atomic_write_bytes(path, (token + "\n").encode(), mode=0o600)
        os.chmod(path, 0o600)
        log.info("generated a new access token in %s", path)
        return token

    # ---- takes ---------------------------------------------------------------------------------
    def write_take(self, *, session_id: str, session_name: str, stem: str, bpm: float, number: int,
                   audio: np.ndarray, start_sample: int, manifest: dict[str, Any], fmt: str = "pcm24",
                   description: str = "", directory: Path | None = None) -> WrittenTake:
        """Write one take (BWF WAV + recall manifest JSON) atomically; never overwrites an existing take.

        ``audio``: float32 (2, N) at 48 kHz, written exactly as given (N frames, no gain change).
        If the DAW name for ``number`` is taken on disk, the next free number is used.
        """
        audio = np.asarray(audio, dtype=np.float32)
        if audio.ndim != 2 or audio.shape[0] != 2:
            raise InvalidAudio(f"a take must be stereo (2, N), got shape {audio.shape}")
        if not np.all(np.isfinite(audio)):
            raise InvalidAudio("refusing to write a take with NaN/Inf samples")
        if start_sample < 0:
            raise InvalidArgument(f"start sample must be >= 0, got {start_sample}")
        directory = directory or self.takes_dir(session_id)
        directory.mkdir(parents=True, exist_ok=True)
        while (directory / take_file_name(session_name, stem, bpm, number)).exists():
            number += 1
        path = directory / take_file_name(session_name, stem, bpm, number)
        desc = description or f"Stemforge {stem} take {number}: {manifest.get('prompt', '')}"
        data = build_bwf(audio, SAMPLE_RATE, subtype=fmt, description=desc, time_reference=start_sample,
                         originator_reference=str(manifest.get("take_id", ""))[:32])
        digest = hashlib.sha256(data).hexdigest()
        manifest_path = path.with_suffix(".json")
        full_manifest = {
            **manifest,
            "file": path.name,
            "stem": stem,
            "take_number": number,
            "sample_rate": SAMPLE_RATE,
            "frames": int(audio.shape[1]),
            "start_sample": int(start_sample),
            "format": fmt,
            "sha256": digest,
        }
        atomic_write_bytes(path, data)
        atomic_write_bytes(manifest_path, (json.dumps(full_manifest, indent=2, sort_keys=True,
                                                      default=_json_default) + "\n").encode())
        log.debug("wrote take %s (%d frames, start %d)", path, audio.shape[1], start_sample)
        return WrittenTake(path=path, manifest_path=manifest_path, frames=int(audio.shape[1]),
                           sample_rate=SAMPLE_RATE, start_sample=int(start_sample), sha256=digest,
                           number=number, format=fmt)


def _json_default(obj: Any) -> Any:
    if isinstance(obj, (np.integer,)):
        return int(obj)
    if isinstance(obj, (np.floating,)):
        return float(obj)
    if isinstance(obj, (tuple, set)):
        return list(obj)
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


def sha256_file(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


__all__ = ["Storage", "WrittenTake", "atomic_write_bytes", "default_data_dir", "take_file_name", "safe_name",
           "format_bpm", "sha256_file", "fsync_dir"]
