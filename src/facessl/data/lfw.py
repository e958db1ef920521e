"""Find Labeled Faces in the Wild, as an official archive or its extracted folder.

Resolution order (first hit wins): an explicit path, `$FACESSL_DATA`, `../shared/data`
beside the checkout (the mirror CI uses), the user cache, then a download of the official
archive with an MD5 check. Nothing downloads at import time.
"""

from __future__ import annotations

import hashlib
import os
import tarfile
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from facessl.data.shared import shared_folders
from facessl.errors import FacesslError
from facessl.files import atomic_path, cache_root
from facessl.progress import bar

# Official archives and their published MD5 sums.
VARIANTS = {
    "lfw-deepfunneled": ("lfw-deepfunneled.tgz", "68331da3eb755a505a502b5aacb3c201"),
    "lfw-funneled": ("lfw-funneled.tgz", "1b42dfed7d15c9b2dd63d5e5840c86ad"),
    "lfw": ("lfw.tgz", "a17d05bd522c52d84eca14327a23d494"),
}
OFFICIAL_URL = "http://vis-www.cs.umass.edu/lfw/"
LFW_IMAGES = 13_233  # images in each official archive
OFFICIAL_SIZES = {"lfw-deepfunneled.tgz": 108_698_960}  # bytes: an archive known unread
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp", ".bmp")


@dataclass(frozen=True)
class ImageSource:
    """A set of images named `<Person>/<file>`: an archive file or a folder of person folders."""

    path: Path
    kind: str  # "archive" or "folder"
    name: str  # e.g. "lfw-deepfunneled", or the folder's name

    def fingerprint(self) -> str:
        """Cheap identity for cache keys: changes when the data changes, not when it moves."""
        if self.kind == "archive":
            return f"{self.path.name}:{self.path.stat().st_size}"
        files = sorted(_folder_images(self.path))
        total = sum(p.stat().st_size for p in files)
        return f"{self.path.name}:{len(files)}:{total}"

    def iter_images(self) -> Iterator[tuple[str, bytes]]:
        """Yield `(relative path, encoded bytes)` for every image, in a stable order."""
        if self.kind == "archive":
            yield from _iter_archive(self.path)
        else:
            for file in sorted(_folder_images(self.path)):
                yield file.relative_to(self.path).as_posix(), file.read_bytes()

    def count(self) -> int | None:
        """How many images it holds (the official deep-funneled archive, known by its name
        and size: LFW's 13,233, without reading it; another archive: None, unknown until
        read)."""
        if self.kind == "archive":
            official = OFFICIAL_SIZES.get(self.path.name) == self.path.stat().st_size
            return LFW_IMAGES if official else None
        return len(_folder_images(self.path))


def _is_image(name: str) -> bool:
    return name.lower().endswith(IMAGE_SUFFIXES)


def _folder_images(root: Path) -> list[Path]:
    return [p for p in root.glob("*/*") if p.is_file() and _is_image(p.name)]


def _iter_archive(path: Path) -> Iterator[tuple[str, bytes]]:
    try:
        with tarfile.open(path, "r:*") as tar:
            for member in tar:
                if not member.isfile() or not _is_image(member.name):
                    continue
                parts = Path(member.name).parts
                # Official archives hold <variant>/<Person>/<file>; keep <Person>/<file>.
                rel = "/".join(parts[-2:])
                handle = tar.extractfile(member)
                if handle is not None:
                    yield rel, handle.read()
    except (tarfile.TarError, EOFError, OSError) as exc:
        raise FacesslError(
            f"the LFW archive {path} is damaged or not a tar archive ({exc}). "
            "Delete it and download it again, or pass `data` with the extracted folder."
        ) from None


def _as_source(path: Path) -> ImageSource | None:
    """Interpret `path` as an archive, a variant folder, a folder holding either, or None."""
    if path.is_file():
        if path.name.endswith((".tgz", ".tar.gz", ".tar")):
            return ImageSource(path, "archive", path.name.split(".")[0])
        return None
    if not path.is_dir():
        return None
    for variant, (archive, _) in VARIANTS.items():
        if (path / variant).is_dir() and _folder_images(path / variant):
            return ImageSource(path / variant, "folder", variant)
        if (path / archive).is_file():
            return ImageSource(path / archive, "archive", variant)
    if _folder_images(path):
        return ImageSource(path, "folder", path.name)
    return None


def locate(
    explicit: str | Path | None = None, variant: str = "lfw-deepfunneled", download: bool = True
) -> ImageSource:
    """Find LFW (or the folder given), downloading the official archive as a last resort."""
    if explicit is not None:
        path = Path(explicit).expanduser()
        if not path.exists():
            raise FacesslError(
                f"the data path {path} does not exist. Pass `data` with an LFW archive "
                "(lfw-deepfunneled.tgz) or a folder of <Person>/<image>.jpg sub-folders."
            )
        source = _as_source(path)
        if source is None:
            raise FacesslError(
                f"no images found in {path}: expected an LFW archive (.tgz) or a folder "
                "of person sub-folders holding .jpg/.png images."
            )
        return source
    searched = []
    env = os.environ.get("FACESSL_DATA")
    candidates = ([Path(env).expanduser()] if env else []) + shared_folders("data")
    candidates.append(cache_root() / "data")
    for path in candidates:
        searched.append(str(path))
        source = _as_source(path) if path.exists() else None
        if source is not None:
            return source
    if download and os.environ.get("FACESSL_OFFLINE") != "1":
        return _download(variant, cache_root() / "data", searched)
    reason = "downloads are off (FACESSL_OFFLINE=1)" if download else "not downloaded here"
    raise _not_found(variant, searched, reason=reason)


def _not_found(variant: str, searched: list[str], reason: str) -> FacesslError:
    archive = VARIANTS.get(variant, VARIANTS["lfw-deepfunneled"])[0]
    return FacesslError(
        f"LFW was not found and could not be downloaded ({reason}). Looked in: "
        + ", ".join(searched)
        + f". Download {archive} from {OFFICIAL_URL} and pass `data` /path/to/{archive} "
        "(or its extracted folder), or set FACESSL_DATA."
    )


def _download(variant: str, dest_dir: Path, searched: list[str]) -> ImageSource:
    if variant not in VARIANTS:
        raise FacesslError(f"unknown LFW variant {variant!r}; expected one of {sorted(VARIANTS)}.")
    archive, md5 = VARIANTS[variant]
    url = os.environ.get("FACESSL_LFW_URL", OFFICIAL_URL) + archive
    dest = dest_dir / archive
    try:
        with urllib.request.urlopen(url, timeout=30) as response, atomic_path(dest) as tmp:
            total = int(response.headers.get("Content-Length") or 0) or None
            digest = hashlib.md5()
            with open(tmp, "wb") as out, bar(None, f"downloading {archive}", total=total,
                                             unit="B", unit_scale=True) as shown:
                while chunk := response.read(1 << 20):
                    out.write(chunk)
                    digest.update(chunk)
                    shown.update(len(chunk))
            if digest.hexdigest() != md5:
                raise FacesslError(
                    f"the downloaded {archive} has MD5 {digest.hexdigest()}, expected {md5}: "
                    "the download is corrupt or the server changed it. Try again, or download "
                    "it yourself and pass `data`."
                )
    except (urllib.error.URLError, OSError, TimeoutError) as exc:
        raise _not_found(variant, searched, reason=f"download from {url} failed: {exc}") from None
    return ImageSource(dest, "archive", variant)
