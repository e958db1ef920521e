"""Photos decoded at the size face detection needs: a phone-size photo costs what a small
one does, and its faces get the same boxes (in its own pixels) and the same names."""

from __future__ import annotations

import io
import shutil

import numpy as np
import pytest
from conftest import photos, shared_model
from PIL import Image

from facessl.config import Preprocessing
from facessl.data.photos import (
    DETECTION_SHORT_SIDE,
    Unreadable,
    album_faces,
    faces_of_photos,
    open_photo,
    person_faces,
)
from facessl.errors import FacesslNote
from facessl.recognition.classifier import FaceClassifier
from facessl.recognition.predict import name_faces, predict_files, read_photo


def _scaled_up(photo, side: int, fmt: str) -> bytes:
    buffer = io.BytesIO()
    image = Image.open(photo).convert("RGB").resize((side, side), Image.Resampling.BILINEAR)
    image.save(buffer, fmt, **({"quality": 92} if fmt == "JPEG" else {"compress_level": 1}))
    return buffer.getvalue()


@pytest.mark.parametrize("fmt", ["JPEG", "PNG"])
def test_a_big_photo_is_decoded_small_and_its_boxes_come_back_in_its_own_pixels(
        tiny_lfw, fmt):
    photo = photos(tiny_lfw, sorted(tiny_lfw["manifest"]["community"])[0])[0]
    side = 6000  # 36 megapixels
    opened = open_photo(_scaled_up(photo, side, fmt), f"big.{fmt.lower()}")
    assert opened.size == (side, side)
    assert DETECTION_SHORT_SIDE <= min(opened.image.size) < 2 * DETECTION_SHORT_SIDE
    small = open_photo(photo.read_bytes(), photo.name)
    assert small.image.size == small.size == (250, 250)  # a small photo is left as it is


def test_a_big_photo_gets_the_same_names_and_boxes_as_the_photo_it_was_made_from(
        tiny_lfw, tmp_path_factory):
    clf = FaceClassifier.load(shared_model(tiny_lfw, tmp_path_factory))
    people = sorted(tiny_lfw["manifest"]["community"])
    originals = [photos(tiny_lfw, person, ("test",))[0] for person in people]
    for original in originals:
        (small,) = name_faces(clf, [read_photo(original, original.name)])
        for fmt in ("JPEG", "PNG"):
            (big,) = name_faces(clf, [read_photo(_scaled_up(original, 5000, fmt), "big")])
            assert (big.width, big.height) == (5000, 5000)
            assert [f.name for f in big.faces][:1] == [f.name for f in small.faces][:1]
            scale = 5000 / 250
            box, reference = big.faces[0], small.faces[0]
            assert np.allclose([box.x, box.y, box.w, box.h],
                               [scale * v for v in (reference.x, reference.y, reference.w,
                                                    reference.h)], atol=0.08 * box.w)


def test_predict_on_a_folder_of_phone_size_photos_boxes_them_in_their_own_pixels(
        tiny_lfw, tmp_path_factory, tmp_path):
    clf = FaceClassifier.load(shared_model(tiny_lfw, tmp_path_factory))
    person = sorted(tiny_lfw["manifest"]["community"])[1]
    files = []
    for i, original in enumerate(photos(tiny_lfw, person, ("test",))):
        files.append(tmp_path / f"phone-{i}.jpg")
        files[-1].write_bytes(_scaled_up(original, 4000, "JPEG"))
    results = list(predict_files(clf, files, annotate=tmp_path / "boxed"))
    assert all(r.error is None and (r.width, r.height) == (4000, 4000) for r in results)
    assert all(0 <= f.x < 4000 and f.w > 400 for r in results for f in r.faces)
    assert Image.open(tmp_path / "boxed" / "phone-0.jpg").size == (4000, 4000)


def test_the_photo_loop_gives_each_unreadable_photo_its_record_and_carries_on(tiny_lfw,
                                                                              tmp_path):
    person = min(tiny_lfw["manifest"]["community"])
    folder = tmp_path / person
    folder.mkdir()
    good = photos(tiny_lfw, person)[:2]
    for photo in good:
        shutil.copy(photo, folder)
    (folder / "broken.jpg").write_bytes(b"not a photo")
    (folder / "cut.jpg").write_bytes(good[0].read_bytes()[:300])
    prep = Preprocessing(128, 64)
    files = sorted(folder.iterdir())
    found = {f.name: f for f in faces_of_photos(((p.name, p) for p in files), prep,
                                                 detector="haar")}
    assert list(found) == [p.name for p in files]  # every photo, in order
    broken, cut = found["broken.jpg"], found["cut.jpg"]
    assert broken.unreadable == Unreadable("broken.jpg",
                                           "is not an image (11 bytes starting b'not a ph')")
    assert broken.error == str(broken.unreadable) == broken.unreadable.message
    assert cut.unreadable.photo == "cut.jpg"
    assert cut.unreadable.why.startswith("is damaged and cannot be decoded")
    assert all(found[p.name].unreadable is None and found[p.name].error is None
               and found[p.name].faces for p in good)

    crops, unused = person_faces(folder, prep, detector="haar")
    assert len(crops) == 2
    assert [(u.photo, u.unreadable) for u in unused] == [(folder / "broken.jpg", True),
                                                         (folder / "cut.jpg", True)]
    assert [u.record for u in unused] == [
        Unreadable(str(folder / "broken.jpg"), broken.unreadable.why),
        Unreadable(str(folder / "cut.jpg"), cut.unreadable.why, cut.unreadable.fix)]
    assert all(u.why == u.record.message for u in unused)  # one sentence

    with pytest.warns(FacesslNote) as noted:
        faces, unreadable = album_faces(files, prep, detector="haar")
    assert unreadable == 2 and len(faces) >= 2
    assert [str(n.message) for n in noted] == [f"album photo skipped: {u.record}"
                                               for u in unused]
