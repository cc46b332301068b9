"""What `reel up` prints while the sample title goes through the pipeline."""

from reelstream.up import title_progress


def test_a_title_not_yet_in_the_catalog_is_registering() -> None:
    assert title_progress(None, "bbb") == "bbb: registering"


def test_progress_counts_the_renditions_transcoded_so_far() -> None:
    row = {"status": "VALIDATED", "renditions": {"h264-240p-400k": {}, "h264-360p-800k": {}}}
    assert title_progress(row, "bbb") == "bbb: VALIDATED, 2 renditions transcoded"
    assert title_progress({"status": "VALIDATED", "renditions": {"r": {}}}, "bbb") == \
        "bbb: VALIDATED, 1 rendition transcoded"
    assert title_progress({"status": "VALIDATED"}, "bbb") == "bbb: VALIDATED, 0 renditions transcoded"
