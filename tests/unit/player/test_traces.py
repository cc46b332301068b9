"""Loading traces and chunk sizes, and finding the data directory."""

from __future__ import annotations

from pathlib import Path

import pytest

from reelstream.player import traces
from reelstream.player.traces import (
    AbrDataInvalid,
    AbrDataMissing,
    data_dir,
    load_traces,
    load_video,
    parse_trace,
    recording_of,
)


def test_parse_trace_accepts_crlf_and_tabs() -> None:
    trace = parse_trace("t", "0.0\t4.03\r\n0.55\t4.79\r\n\r\n1.5 2\r\n")
    assert trace.times_s == (0.0, 0.55, 1.5)
    assert trace.mbps == (4.03, 4.79, 2.0)


def test_parse_trace_names_the_bad_line() -> None:
    with pytest.raises(AbrDataInvalid, match="line 2"):
        parse_trace("t", "0 1\nnot-a-number 2\n")


def test_load_traces_sorted_by_name(tmp_path: Path) -> None:
    (tmp_path / "b").write_text("0 1\n1 2\n")
    (tmp_path / "a").write_text("0 3\n1 4\n")
    assert [t.name for t in load_traces(tmp_path)] == ["a", "b"]


def test_load_video_from_the_video_sizes_folder(tmp_path: Path) -> None:
    folder = tmp_path / "video_sizes"
    folder.mkdir()
    for rung in range(6):
        (folder / f"video_size_{rung}").write_text("\n".join(str(100 * rung + c) for c in range(49)))
    video = load_video(tmp_path)
    assert video.chunks == 48
    assert video.sizes[2] == (2, 102, 202, 302, 402, 502)


def test_short_chunk_size_file_is_invalid(tmp_path: Path) -> None:
    for rung in range(6):
        (tmp_path / f"video_size_{rung}").write_text("1\n2\n")
    with pytest.raises(AbrDataInvalid):
        load_video(tmp_path)


def test_data_dir_from_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(traces.DATA_ENV, str(tmp_path))
    assert data_dir() == tmp_path


def test_missing_data_dir_says_what_to_set(tmp_path: Path,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(traces.DATA_ENV, str(tmp_path / "nope"))
    with pytest.raises(AbrDataMissing, match="REEL_ABR_DATA"):
        data_dir()


def test_default_data_dir_is_beside_the_repo(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(traces.DATA_ENV, raising=False)
    expected = traces.REPO_ROOT.parent / "shared" / "abr"
    if expected.is_dir():
        assert data_dir() == expected
    else:
        with pytest.raises(AbrDataMissing):
            data_dir()


def test_windows_of_one_fcc_measurement_are_one_recording() -> None:
    first = "test_fcc_trace_10652_http---www.amazon.com_0"
    later = "test_fcc_trace_10652_http---www.amazon.com_1020"
    other_site = "test_fcc_trace_10652_http---www.ebay.com_0"
    assert recording_of(first) == recording_of(later) == "test_fcc_trace_10652_http---www.amazon.com"
    assert recording_of(other_site) != recording_of(first)


def test_every_other_trace_file_is_its_own_recording() -> None:
    # HSDPA files are separate commutes: norway_bus_1 and norway_bus_10 share nothing.
    assert recording_of("norway_bus_1") == "norway_bus_1"
    assert recording_of("norway_bus_10") == "norway_bus_10"


@pytest.mark.parametrize(("text", "why"), [
    ("0 1\n1 -5\n2 1\n", "line 2: .*not negative"),  # sums to less each loop: a download never ends
    ("0 1\n1 nan\n2 1\n", "line 2: .*finite"),  # NaN compares false: a download never ends
    ("0 1\n1 inf\n2 1\n", "line 2: .*finite"),
    ("0 1\n5 1\n3 1\n", "line 3: time 3 is before"),
])
def test_parse_trace_refuses_samples_a_download_could_never_end_on(text: str, why: str) -> None:
    with pytest.raises(AbrDataInvalid, match=why):
        parse_trace("t", text)


def test_a_binary_file_among_the_traces_is_named(tmp_path: Path) -> None:
    (tmp_path / "a").write_text("0 3\n1 4\n")
    (tmp_path / "b.gz").write_bytes(b"\x1f\x8b\x08\x00\xff\xfe")
    with pytest.raises(AbrDataInvalid, match="b.gz: not a text file"):
        load_traces(tmp_path)
