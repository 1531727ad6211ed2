"""The path-containment rule: a stored relative path may only name a file inside its folder.

A registry row can only name files under its root: an absolute path, a ``..`` or a
backslash is refused, so someone who can write the database but not the folder cannot make
the service read a file of their choosing; a symlink leading out of the folder is refused
where the file is served.
"""

from __future__ import annotations

from pathlib import Path, PurePosixPath


class PathOutside(ValueError):
    """The relative path could name a file outside its root folder."""


def path_within(root: Path, relative: str) -> Path:
    """``root / relative``; raises ``PathOutside`` when ``relative`` could leave ``root``."""
    parts = PurePosixPath(relative).parts
    if not parts or PurePosixPath(relative).is_absolute() or ".." in parts or "\\" in relative:
        raise PathOutside(relative)
    return root / relative


def resolves_within(root: Path, path: Path) -> bool:
    """Whether ``path``, with every symlink followed, is still inside ``root``."""
    return path.resolve().is_relative_to(root.resolve())
