"""Real photo files for the product benchmarks, cut from LFW by the lfw62-v1 split.

`facessl enroll` reads folders of photos, so the benchmarks give it exactly that:
`<dest>/people/<name>/` holds the first k train photos of each of the 62 people, and
`<dest>/test/` their test photos (250x250 JPEGs, as LFW ships them).
"""

from __future__ import annotations

from pathlib import Path

from facessl.data import lfw
from facessl.data.splits import load_manifest, resolve_split_path


def write_photos(dest: Path, shots: int = 5, data: str | None = None) -> tuple[Path, list[Path]]:
    """(people folder, test photo files) under `dest`, extracted once."""
    split = load_manifest(resolve_split_path("lfw62-v1"))
    wanted = {}
    for person, roles in split.community.items():
        for rel in roles["train"][:shots]:
            wanted[rel] = dest / "people" / person / Path(rel).name
        for rel in roles["test"]:
            wanted[rel] = dest / "test" / Path(rel).name
    if not all(path.is_file() for path in wanted.values()):
        for rel, data_bytes in lfw.locate(data).iter_images():
            if rel in wanted:
                wanted[rel].parent.mkdir(parents=True, exist_ok=True)
                wanted[rel].write_bytes(data_bytes)
    return dest / "people", sorted(p for p in wanted.values() if p.parent.name == "test")
