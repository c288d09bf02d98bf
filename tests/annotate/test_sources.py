"""SOURCE -> the list of images: folders, globs, list files; and what cannot be read."""

from __future__ import annotations

import pytest

from segserve.annotate.sources import list_images, load_image, read_bytes
from segserve.errors import ImageTooLargeError, InvalidImageError, InvalidParameterError
from segserve.settings import Settings


def test_folder_is_recursive_sorted_and_skips_hidden_and_non_images(photo_folder):
    listing = list_images(photo_folder)
    keys = [ref.key for ref in listing.images]
    assert keys == sorted(keys)
    assert "broken.jpg" in keys and "sub/003_rocket.png" in keys  # sub-folders, relative keys
    assert ".hidden.jpg" not in keys and "notes.txt" not in keys
    assert listing.root == photo_folder.resolve()


def test_glob_keys_are_relative_to_its_fixed_prefix(photo_folder):
    listing = list_images(str(photo_folder / "**" / "*.png"))
    assert [ref.key for ref in listing.images] == ["001_coffee.png", "sub/003_rocket.png", "sub/005_coins.png"]
    assert listing.root == photo_folder.resolve()


def test_list_file_keeps_its_order_resolves_relative_paths_and_accepts_urls(photo_folder, tmp_path):
    listing_file = photo_folder / "list.txt"
    listing_file.write_text(
        "# photos\nsub/003_rocket.png\n\n000_astronaut.jpg\nhttps://example.com/a.jpg\n000_astronaut.jpg\n"
    )
    try:
        refs = list_images(listing_file).images
    finally:
        listing_file.unlink()
    assert [r.key for r in refs] == ["sub/003_rocket.png", "000_astronaut.jpg", "https://example.com/a.jpg"]
    assert refs[0].location == str((photo_folder / "sub" / "003_rocket.png").resolve())
    assert refs[2].is_url and not refs[0].is_url


def test_a_source_that_names_nothing_is_refused(tmp_path):
    with pytest.raises(InvalidParameterError) as info:
        list_images(tmp_path / "missing")
    assert info.value.param == "source"


@pytest.mark.parametrize(
    "name, content, limit, error",
    [
        ("broken.jpg", b"\xff\xd8 nope", None, InvalidImageError),  # not decodable
        ("big.png", b"x" * 2000, 1000, ImageTooLargeError),  # over max_image_bytes, never read
    ],
)
def test_unreadable_images_raise_the_servers_errors(tmp_path, name, content, limit, error):
    (tmp_path / name).write_bytes(content)
    settings = Settings.defaults() if limit is None else Settings.defaults().replace(max_image_bytes=limit)
    ref = list_images(tmp_path).images[0]
    with pytest.raises(error):
        load_image(ref, settings)


def test_a_vanished_file_is_an_image_error(photo_folder, tmp_path):
    (tmp_path / "a.jpg").write_bytes((photo_folder / "000_astronaut.jpg").read_bytes())
    ref = list_images(tmp_path).images[0]
    (tmp_path / "a.jpg").unlink()
    with pytest.raises(InvalidImageError):
        read_bytes(ref, Settings.defaults())
