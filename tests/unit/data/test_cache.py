import io
import json
import shutil
import warnings

import numpy as np
import pytest
from conftest import TRUNCATED
from PIL import Image, ImageFile

from facessl.augment import to_tensor
from facessl.config import Preprocessing
from facessl.data import cache, lfw
from facessl.data.images import UnreadableError
from facessl.data.photos import open_photo
from facessl.errors import FacesslNote


def test_decodes_once_then_memory_maps(tiny_lfw, monkeypatch):
    source = lfw.locate(tiny_lfw["folder"])
    prep = Preprocessing(crop=128, size=32)
    built = cache.load_or_build(source, prep, quiet=True)
    assert built.images.shape == (source.count(), 32, 32, 3)
    assert built.images.dtype == np.uint8 and built.images.std() > 10

    def no_decoding(*args, **kwargs):
        raise AssertionError("the cache was rebuilt")

    monkeypatch.setattr(cache, "decode_face", no_decoding)
    again = cache.load_or_build(source, prep, quiet=True)
    assert isinstance(again.images, np.memmap)
    assert np.array_equal(again.images, built.images)


def test_new_preprocessing_makes_a_new_cache(tiny_lfw):
    source = lfw.locate(tiny_lfw["folder"])
    colour = cache.load_or_build(source, Preprocessing(128, 32), quiet=True)
    grey = cache.load_or_build(source, Preprocessing(128, 32, grayscale=True), quiet=True)
    wider = cache.load_or_build(source, Preprocessing(200, 32), quiet=True)
    assert len({colour.folder, grey.folder, wider.folder}) == 3
    assert grey.images.shape[-1] == 1
    assert not np.array_equal(colour.images, wider.images)


def test_truncated_jpeg_is_decoded_with_a_warning(tiny_lfw):
    data = (tiny_lfw["folder"] / TRUNCATED).read_bytes()
    with pytest.warns(UserWarning, match="truncated"):
        image, truncated = cache.decode_face(data, Preprocessing(128, 64), TRUNCATED)
    assert truncated and image.shape == (64, 64, 3)
    assert image[:20].std() > 5  # the part that decodes carries a real face
    built = cache.load_or_build(lfw.locate(tiny_lfw["folder"]), Preprocessing(128, 32),
                                quiet=True)
    assert built.truncated == [TRUNCATED] and TRUNCATED in built


def test_a_truncated_jpeg_flips_no_process_wide_switch(tiny_lfw):
    """Decoding LFW's truncated JPEG must not make PIL accept truncated files elsewhere
    (a server decoding another upload at the same moment would see it)."""
    data = (tiny_lfw["folder"] / TRUNCATED).read_bytes()
    with pytest.warns(UserWarning, match="truncated"):
        image, truncated = cache.open_image(data, TRUNCATED)
    assert truncated and ImageFile.LOAD_TRUNCATED_IMAGES is False
    rows = np.asarray(image.convert("L"))
    assert rows[-10:].std() == 0 and rows[-10:].mean() == 128  # the missing rows are grey
    cut_png = io.BytesIO()
    Image.fromarray(rows).save(cut_png, "PNG")
    with pytest.raises(UnreadableError, match="photo cut.png is damaged"):
        cache.open_image(cut_png.getvalue()[:2000], "cut.png")  # a PNG is not half-read


def test_an_unreadable_image_is_skipped_listed_and_noted_as_the_photo_loop_says(
        tiny_lfw, tmp_path):
    """A dataset's broken file is left out of the cache, listed in its index, and noted in
    the one sentence the photo loop gives it (`open_photo`)."""
    folder = tmp_path / "faces"
    for person in sorted(tiny_lfw["manifest"]["community"])[:2]:
        shutil.copytree(tiny_lfw["folder"] / person, folder / person)
    broken = folder / "Zz_Broken" / "Zz_Broken_0001.jpg"
    broken.parent.mkdir()
    broken.write_bytes(b"\x00garbage, not a JPEG")
    source = lfw.locate(folder)
    with pytest.warns(FacesslNote) as noted:
        built = cache.load_or_build(source, Preprocessing(128, 24), quiet=True)
    rel = "Zz_Broken/Zz_Broken_0001.jpg"
    sentence = open_photo(broken.read_bytes(), rel).unreadable.message
    assert [str(n.message) for n in noted] == [f"photo skipped: {sentence}"]
    assert sentence == (f"photo {rel} is not an image (20 bytes starting b'\\x00garbage'); "
                        "pass a JPEG, PNG or WebP photo.")
    assert rel not in built and len(built.paths) == source.count() - 1
    index = json.loads((built.folder / "index.json").read_text())
    assert index["unreadable"] == [rel]


def test_half_written_cache_is_not_trusted(tiny_lfw):
    source = lfw.locate(tiny_lfw["folder"])
    prep = Preprocessing(128, 24)
    folder = cache.cache_folder(source, prep)
    folder.mkdir(parents=True)
    (folder / "images.npy").write_bytes(b"killed mid-write")  # no index.json beside it
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        built = cache.load_or_build(source, prep, quiet=True)
    assert built.images.shape[0] == source.count()
    assert not list(folder.glob(".*tmp*"))  # no temporary files left behind


def test_take_returns_the_photo_layout_in_the_order_asked(tiny_lfw):
    built = cache.load_or_build(lfw.locate(tiny_lfw["folder"]), Preprocessing(128, 32),
                                quiet=True)
    a, b = built.paths[3], built.paths[0]
    taken = built.take([a, b])
    assert taken.shape == (2, 32, 32, 3)
    assert np.array_equal(taken[0], built.images[3])
    assert to_tensor(taken).shape == (2, 3, 32, 32)
    assert np.array_equal(to_tensor(taken)[1].numpy(), built.images[0].transpose(2, 0, 1))


def test_a_streamed_build_holds_each_photo_as_decoded_alone(tiny_lfw):
    """Rows go to disk as they are decoded (no stacking in memory): each must still be its
    own photo's, in the index's order."""
    source = lfw.locate(tiny_lfw["folder"])
    prep = Preprocessing(crop=128, size=24)
    built = cache.load_or_build(source, prep, quiet=True)
    for i in (0, len(built.paths) // 2, len(built.paths) - 1):
        data = (tiny_lfw["folder"] / built.paths[i]).read_bytes()
        assert np.array_equal(built.images[i], cache.decode_face(data, prep)[0])
    assert sorted(p.name for p in built.folder.iterdir()) == ["images.npy", "index.json"]


def test_rows_read_the_memory_mapped_cache_only_when_asked(tiny_lfw):
    import torch

    from facessl.augment import TorchFaces
    built = cache.load_or_build(lfw.locate(tiny_lfw["folder"]), Preprocessing(128, 32),
                                quiet=True)
    paths = [built.paths[i] for i in (7, 2, 9, 2, 0)]
    rows, taken = built.rows(paths), built.take(paths)
    assert isinstance(rows.images, np.memmap) and len(rows) == 5 and rows.shape == taken.shape
    mask = np.array([True, False, True, True, False])
    for key in (slice(None), slice(1, 4), np.array([4, 0, 3]), mask):
        assert np.array_equal(rows[key], taken[key])
    assert np.array_equal(rows[1], taken[1])
    assert np.array_equal(rows.part(slice(2, 5))[:], taken[2:5])
    batch = TorchFaces(rows)[torch.tensor([3, 1])]
    assert torch.equal(batch, to_tensor(taken)[[3, 1]])
