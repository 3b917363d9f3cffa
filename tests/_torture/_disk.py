"""A small file system under one station's queue folder, so the torture can fill it up.

Tried in order: a tmpfs (``mount -t tmpfs``, needs root), an ext4 image on a
loop device, and nothing (``mechanism == "none"``, with the reason): the
queue has no ENOSPC test hook, and faking the error in-process would not
test the real write path. Filling writes a filler file beside the queue
folder until the kernel answers ENOSPC; freeing deletes it.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

__all__ = ["SmallDisk"]

_CHUNK = b"\0" * (64 * 1024)


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, capture_output=True, text=True, timeout=60, check=False)


class SmallDisk:
    """A ``size_mb`` file system mounted at ``mount_point`` (owner-only), or none."""

    def __init__(self, mount_point: Path, size_mb: int = 16) -> None:
        self.mount_point = mount_point
        self.size_mb = size_mb
        self.mechanism = "none"
        self.reason = ""
        self.filler = mount_point / "torture-filler.bin"
        self._image: Path | None = None

    @property
    def available(self) -> bool:
        return self.mechanism != "none"

    def mount(self) -> SmallDisk:
        self.mount_point.mkdir(parents=True, exist_ok=True)
        if sys.platform != "linux":
            self.reason = f"no small file system on {sys.platform}"
            return self
        done = _run(
            "mount", "-t", "tmpfs", "-o", f"size={self.size_mb}m,mode=0700", "tmpfs",
            str(self.mount_point),
        )  # fmt: skip
        if done.returncode == 0:
            self.mechanism = "tmpfs"
            return self
        reasons = [f"tmpfs: {done.stderr.strip() or done.returncode}"]
        if shutil.which("mkfs.ext4"):
            image = self.mount_point.with_name(self.mount_point.name + ".img")
            with open(image, "wb") as out:
                out.truncate(self.size_mb * 1024 * 1024)
            made = _run("mkfs.ext4", "-q", "-F", str(image))
            done = _run("mount", "-o", "loop", str(image), str(self.mount_point))
            if made.returncode == 0 and done.returncode == 0:
                self.mount_point.chmod(0o700)
                self.mechanism, self._image = "loop", image
                return self
            reasons.append(f"loop: {(made.stderr or done.stderr).strip() or done.returncode}")
            image.unlink(missing_ok=True)
        else:
            reasons.append("loop: mkfs.ext4 not installed")
        self.reason = "; ".join(reasons)
        return self

    def fill(self) -> int:
        """Write the filler until ENOSPC (to the last block); returns the bytes written."""
        written = 0
        fd = os.open(self.filler, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        try:
            for chunk in (_CHUNK, b"\0" * 512, b"\0"):
                with contextlib.suppress(OSError):
                    while True:
                        written += os.write(fd, chunk)
        finally:
            os.close(fd)
        return written

    def free(self) -> None:
        self.filler.unlink(missing_ok=True)

    def unmount(self) -> None:
        if not self.available:
            return
        self.free()
        if _run("umount", str(self.mount_point)).returncode != 0:
            _run("umount", "-l", str(self.mount_point))  # a process still holds a file
        if self._image is not None:
            self._image.unlink(missing_ok=True)
        self.mechanism = "none"
