"""The edge-jaggies metric (cartoonkit.analysis.edges): validated on rendered pictures, checked against a slow
pixel-by-pixel reference, and the preprocessing-variant table notebook 02 uses."""

from __future__ import annotations

import numpy as np
import pytest

from cartoonkit.analysis import edges
from cartoonkit.analysis.edges import jaggedness, jaggedness_reference, render_disc, render_line


def test_aliased_disc_scores_clearly_worse_than_antialiased():
    hard, smooth = jaggedness(render_disc(supersample=1)), jaggedness(render_disc(supersample=8))
    assert hard > 3 * smooth
    assert hard > 4.0 and smooth < 2.0


@pytest.mark.parametrize("angle", [15.0, 25.0, 40.0, 63.0])
def test_rotated_aliased_line_scores_worse_than_antialiased(angle):
    assert jaggedness(render_line(angle_degrees=angle, supersample=1)) > \
        2 * jaggedness(render_line(angle_degrees=angle, supersample=8))


@pytest.mark.parametrize("render", [render_disc, render_line])
def test_monotone_in_the_amount_of_aliasing(render):
    # More samples per pixel = less aliasing: the score falls at every step.
    scores = [jaggedness(render(supersample=n)) for n in (1, 2, 3, 4, 8)]
    assert all(a > b for a, b in zip(scores[:-1], scores[1:], strict=True)), scores


def test_axis_aligned_edges_and_flat_images_have_no_jaggies():
    assert jaggedness(render_line(angle_degrees=0.0)) < 1e-6
    assert jaggedness(render_line(angle_degrees=90.0)) < 1e-6
    assert jaggedness(np.full((32, 32, 3), 90, np.uint8)) == 0.0


def test_independent_of_colour_and_polarity():
    dark_on_light = render_disc(supersample=1)
    assert jaggedness(255 - dark_on_light) == pytest.approx(jaggedness(dark_on_light), rel=1e-9)


@pytest.mark.parametrize("image", [
    render_disc(size=36, radius=11, supersample=1),
    render_disc(size=36, radius=11, supersample=4),
    render_line(size=30, angle_degrees=33, width=7, supersample=2),
    np.random.default_rng(0).integers(0, 256, (23, 31, 3), dtype=np.uint8),
], ids=["hard-disc", "smooth-disc", "line", "noise"])
def test_fast_version_matches_the_slow_reference(image):
    assert jaggedness(image) == pytest.approx(jaggedness_reference(image), rel=1e-9, abs=1e-9)


def test_rejects_what_is_not_an_rgb_uint8_image():
    with pytest.raises(ValueError):
        jaggedness(np.zeros((8, 8), np.uint8))
    with pytest.raises(ValueError):
        jaggedness(np.zeros((8, 8, 3), np.float32))


def test_detail_falls_with_blur():
    import cv2

    photo = render_disc(supersample=1)
    assert edges.detail(cv2.GaussianBlur(photo, (5, 5), 0)) < edges.detail(photo)


def test_claim_verdict():
    rows = [{"photo": p, "variant": v, "jaggedness": j}
            for p, base, treated in (("a", 10.0, 9.0), ("b", 8.0, 6.0), ("c", 5.0, 4.5))
            for v, j in ((edges.BASELINE, base), (edges.CLAIMED, treated))]
    result = edges.claim_verdict(rows)
    assert result["per_photo"] == pytest.approx({"a": 0.1, "b": 0.25, "c": 0.1})
    assert result["measured_median"] == pytest.approx(0.1)
    assert "10.0 %" in result["verdict"] and "overstates" in result["verdict"]
    assert "consistent" in edges.claim_verdict(rows, claimed_reduction=0.12)["verdict"]
    with pytest.raises(ValueError):
        edges.claim_verdict(rows, variant="nothing")


def test_colour_shift():
    rng = np.random.default_rng(1)
    image = rng.integers(0, 256, (16, 16, 3), dtype=np.uint8)
    assert edges.colour_shift(image, image)["delta_e"] == 0.0
    redder = image.copy()
    redder[..., 0] = np.minimum(255, redder[..., 0].astype(int) + 60)
    shift = edges.colour_shift(image, redder)
    assert shift["delta_e"] > 5 and shift["delta_a"] > 0


@pytest.fixture(scope="module")
def photo(shared_images):
    from cartoonkit.imageio import read_image

    return read_image(shared_images / "wb_actress2.jpg")


def test_preprocessing_variants_table(cartoonizer, photo):
    variants = [v for v in edges.PREPROCESSING_VARIANTS if v[0] in (edges.BASELINE, edges.CLAIMED)]
    rows, images = edges.run_preprocessing_variants(cartoonizer, photo, resolution=256, variants=variants)
    assert [r["variant"] for r in rows] == [edges.BASELINE, edges.CLAIMED]
    assert rows[0]["change_vs_baseline"] == 0.0 and rows[0]["photo"] == "wb_actress2.jpg"
    for row in rows:
        image = images[row["variant"]]
        assert image.dtype == np.uint8 and max(image.shape[:2]) == 256
        assert row["jaggedness"] == pytest.approx(jaggedness(image))
        assert row["ms"] > 0
    assert rows[1]["change_vs_baseline"] == pytest.approx(rows[1]["jaggedness"] / rows[0]["jaggedness"] - 1)
    assert "the claim" in edges.claim_verdict(rows)["verdict"]


def test_swapped_channels(cartoonizer, photo):
    from cartoonkit import CartoonConfig

    net_photo = cartoonizer.prepare(photo, CartoonConfig(resolution=256)).photo
    # With the network off (style weight 0) swapping and swapping back is the identity.
    assert np.array_equal(edges.cartoonize_swapped_channels(cartoonizer, net_photo, 0.0), net_photo)
    right = cartoonizer.run_network([net_photo], 1.0)[0].permute(1, 2, 0).numpy()
    wrong = edges.cartoonize_swapped_channels(cartoonizer, net_photo, 1.0).permute(1, 2, 0).numpy()
    assert wrong.shape == right.shape
    assert edges.colour_shift(right, wrong)["delta_e"] > 2.0


def test_strongest_edge_window_and_zoom():
    image = np.full((80, 100, 3), 255, np.uint8)
    image[50:70, 60:90] = 0  # the only edges
    top, left = edges.strongest_edge_window(image, size=24)
    assert 50 - 24 <= top <= 70 and 60 - 24 <= left <= 90
    crop = edges.zoom(image, top, left, size=24, factor=3)
    assert crop.shape == (72, 72, 3)
    assert np.array_equal(crop[::3, ::3], image[top:top + 24, left:left + 24])


def test_variants_chart():
    rows = [{"photo": "a", "variant": v, "change_vs_baseline": c, "detail_vs_baseline": d}
            for v, c, d in (("baseline", 0.0, 0.0), ("x", -0.2, -0.1))]
    figure = edges.variants_chart(rows)
    assert [list(t.y) for t in figure.data] == [[0.0, -20.0], [0.0, -10.0]]
