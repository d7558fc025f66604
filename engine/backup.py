"""A consistent copy of the SQLite database while the app runs (`tsunagu db backup FILE`).

Copying the file with `cp` while the server writes can give a copy that SQLite calls corrupt (and misses what
still sits in the WAL file). SQLite's online backup reads one snapshot, under a read transaction that does not
hold writers back. The copy is checked before it takes its name, is readable by its owner only (it holds every
record of every case), and never replaces a file already there.
"""
from __future__ import annotations

import os
import sqlite3
from dataclasses import dataclass
from pathlib import Path

from engine.errors import EngineError


class BackupRefused(EngineError):
    """The copy cannot be made as asked; the message says why (nothing was written under the name)."""

    code = "backup_refused"
    title = "バックアップを作成できません"


@dataclass
class BackupResult:
    path: Path
    size: int


def _fsync(path: Path) -> None:
    """Flush a file, or a folder's entries, to the disk."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def sqlite_copy(source: Path, target: Path) -> BackupResult:
    """Copy the SQLite database at `source` to the new file `target` (mode 0600), checked and fsynced."""
    if not source.is_file():
        raise BackupRefused(f"データベースのファイル {source} がありません。")
    if target.exists() or target.is_symlink():
        raise BackupRefused(f"{target} は既にあります。バックアップは既存のファイルを上書きしません。別の名前を指定してください。")
    folder = target.parent
    if not folder.is_dir():
        raise BackupRefused(f"保存先のフォルダ {folder} がありません。")
    draft = folder / f".{target.name}.{os.getpid()}.partial"
    try:
        fd = os.open(draft, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except OSError as exc:
        raise BackupRefused(f"保存先 {folder} に書き込めません（{exc.strerror}）。") from None
    os.close(fd)
    try:
        src = sqlite3.connect(source)
        try:
            dst = sqlite3.connect(draft)
            try:
                src.backup(dst)  # all pages in one step: one snapshot
                problems = [row[0] for row in dst.execute("PRAGMA integrity_check")]
            finally:
                dst.close()
        finally:
            src.close()
        if problems != ["ok"]:
            raise BackupRefused("作成したコピーの検査で問題が見つかったため、破棄しました: " + "; ".join(problems[:3]))
        _fsync(draft)
        try:
            os.link(draft, target)  # takes the name only if nobody has it yet
        except FileExistsError:
            raise BackupRefused(f"{target} は既にあります。バックアップは既存のファイルを上書きしません。") from None
        _fsync(folder)
    except (sqlite3.Error, OSError) as exc:
        raise BackupRefused(f"コピー中にエラーが起きました（{exc}）。") from None
    finally:
        draft.unlink(missing_ok=True)
    return BackupResult(target, target.stat().st_size)
