"""Where data set files are looked for, and how missing ones are downloaded.

Every loader searches the same places, in this order, and takes the first that
holds a complete set of files:

1. the ``path`` argument of ``load_data``;
2. the directory named by the environment variable ``FASTCONV_DATA``;
3. the cache, ``~/.fastconv/datasets``, or the directory named by ``FASTCONV_CACHE``;
4. system locations, such as ``/usr/share/datasets/fashion-mnist`` where Debian's
   package ``dataset-fashion-mnist`` installs Fashion-MNIST.

In each of the directories 1-3 both the directory itself and its subdirectory named
after the data set (``mnist``, ``fashion-mnist``, ``cifar-10``) are tried.

If no place has the files, they are downloaded from the data set's official source
into ``<cache>/<name>`` with pooch: each file goes to a temporary file in the cache
directory, its SHA-256 is checked, and only then is it moved into place, so the cache
never holds a half-written or unverified file. Checksums guard downloads only: files
found locally (Debian recompresses its copies, so their bytes differ from upstream's)
are checked by their structure when they are read.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, List, Optional, Sequence, Tuple
from urllib.parse import unquote, urlparse

__all__ = ["DataNotFoundError", "Remote", "cache_dir", "places", "download"]


class DataNotFoundError(FileNotFoundError):
    """No searched place has the files and they could not be downloaded."""


@dataclass(frozen=True)
class Remote:
    """One file of a data set's official distribution."""

    fname: str
    url: str
    sha256: str


def cache_dir() -> Path:
    """The download cache: ``$FASTCONV_CACHE`` if set, else ``~/.fastconv/datasets``."""
    override = os.environ.get("FASTCONV_CACHE")
    if override:
        return Path(override).expanduser()
    return Path.home() / ".fastconv" / "datasets"


def places(
    path: Optional[os.PathLike],
    system: Sequence[Tuple[str, Path]] = (),
) -> List[Tuple[str, Optional[Path]]]:
    """The places to search, in order, as ``(description, directory or None)``.

    ``None`` marks a place that is not configured (no ``path``, ``FASTCONV_DATA`` unset),
    so that an error can still say it was considered.
    """
    found: List[Tuple[str, Optional[Path]]] = []
    found.append(("the `path` argument", Path(path).expanduser() if path is not None else None))
    env = os.environ.get("FASTCONV_DATA")
    found.append(("$FASTCONV_DATA", Path(env).expanduser() if env else None))
    found.append(("the cache ($FASTCONV_CACHE or ~/.fastconv/datasets)", cache_dir()))
    found.extend((what, Path(p)) for what, p in system)
    return found


def candidate_dirs(place: Path, name: str, system: bool) -> List[Path]:
    """A user directory may hold the files directly or in a subdirectory ``name``."""
    return [place] if system else [place, place / name]


def describe(searched: Sequence[Tuple[str, Optional[Path]]]) -> str:
    lines = []
    for what, where in searched:
        lines.append(f"  - {what}: {where if where is not None else '(not set)'}")
    return "\n".join(lines)


def _file_url_downloader(url: str, output_file, pooch_obj) -> None:
    """Copy a ``file://`` URL (a local mirror) the way pooch's downloaders write."""
    source = unquote(urlparse(url).path)
    if hasattr(output_file, "write"):
        with open(source, "rb") as src:
            shutil.copyfileobj(src, output_file)
    else:
        shutil.copyfile(source, output_file)


def _progressbar() -> bool:
    try:
        import tqdm  # noqa: F401
    except ImportError:
        return False
    return True


def download(remotes: Sequence[Remote], dest: Path,
             downloader: Optional[Callable] = None) -> None:
    """Fetch ``remotes`` into ``dest``, each verified by SHA-256 before it lands.

    Raises
    ------
    ImportError
        pooch is not installed.
    ValueError
        A downloaded file's SHA-256 differs from the known one (nothing is kept).
    OSError
        Any network or file system failure.
    """
    try:
        import pooch
    except ImportError as err:
        raise ImportError(
            "Downloading data sets needs pooch: pip install 'fastconv[data]'"
        ) from err
    dest.mkdir(parents=True, exist_ok=True)
    progress = _progressbar()
    for remote in remotes:
        chosen = downloader
        if chosen is None and remote.url.startswith("file://"):
            chosen = _file_url_downloader
        try:
            pooch.retrieve(
                remote.url,
                known_hash=f"sha256:{remote.sha256}",
                fname=remote.fname,
                path=dest,
                downloader=chosen,
                progressbar=progress,
            )
        except ValueError as err:
            if "hash" not in str(err).lower():
                raise
            raise ValueError(
                f"The SHA-256 of the downloaded file {remote.fname} from {remote.url} must be "
                f"{remote.sha256}. Received: a different file ({err}). It was not kept in "
                f"{dest}."
            ) from None
