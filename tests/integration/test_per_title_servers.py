"""A per-title ladder on the server runtime: REEL_LADDER_MODE=per_title through Kafka,
Cassandra and S3.

Ingest measures a short master, records the analysis and the chosen ladder on Kafka, plans
the chosen rungs; two worker processes (one consumer group) encode them from S3 and the
completion processor folds the results into Cassandra. The test reads the title's events
from its own partition of ``reel.catalog`` (the shared broker holds earlier runs' events),
checks the decision replays from the recorded analysis, that the renditions stored and
completed are exactly the chosen rungs, and that every rung decodes frame-exact.
"""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import pytest

from reelstream.cli.ladder import replay_differences
from reelstream.config import Settings
from reelstream.events.model import Event
from reelstream.events.partitioning import partition_for
from reelstream.ingest.service import IngestService
from reelstream.media import tools
from reelstream.media.probe import count_frames
from reelstream.media.transcode.ladder import Rung
from reelstream.runtime import Runtime
from reelstream.stores.s3 import S3ObjectStore
from tests.support.fleet import transcode_with_fleet
from tests.support.media import make_master, title_metadata, write_metadata

pytestmark = pytest.mark.integration

# The fixed ladder the per-title one replaces (its floor and ceiling), tiny so trials are cheap.
LADDER = (Rung("h264", 144, 150), Rung("h264", 180, 600))
CATALOG = "reel.catalog"


@pytest.fixture
def servers(kafka_bootstrap: str, cassandra_contact: tuple[list[str], int], s3_settings: dict[str, str],
            unique: str, tmp_path: Path) -> Settings:
    hosts, port = cassandra_contact
    # The deployment's setup creates the bucket; the runtime's roles only open it.
    S3ObjectStore(f"reel-pt-{unique}", s3_settings["endpoint"], s3_settings["region"], s3_settings["access_key"],
                  s3_settings["secret_key"], create_bucket=True)
    return Settings(data_dir=tmp_path / "reel", log_url=f"kafka://{kafka_bootstrap}", group_prefix=f"it-{unique}",
                    namespace=f"ns-{unique}",  # other runs on the broker must not take its jobs
                    state_url=f"cassandra://{','.join(hosts)}:{port}/reel_pt_{unique}",
                    objects_url=f"s3://reel-pt-{unique}?endpoint={s3_settings['endpoint']}",
                    s3_access_key=s3_settings["access_key"], s3_secret_key=s3_settings["secret_key"],
                    ladder_mode="per_title")


def title_events(runtime: Runtime, title: str, since_ms: int) -> list[Event]:
    """The title's events on ``reel.catalog`` appended since ``since_ms``, up to the current
    end of its partition (the shared broker holds earlier runs' events: they are skipped by time)."""
    partition = partition_for(title.encode(), runtime.log.partitions(CATALOG))
    end = runtime.log.end_offsets(CATALOG)[partition]
    reader = runtime.log.consumer([CATALOG], group_id=None)
    try:
        reader.seek_to_timestamp(since_ms)
        out: list[Event] = []
        deadline = time.monotonic() + 60
        reached = False
        while not reached:
            assert time.monotonic() < deadline, f"{CATALOG}/{partition} not read up to {end} in time"
            for record in reader.poll(max_records=5_000, timeout=1):
                if record.partition != partition:
                    continue
                reached = reached or record.offset + 1 >= end
                event = runtime.codec.decode(record.value)
                if event.data.get("title_id") == title:
                    out.append(event)
        return out
    finally:
        reader.close()


def test_a_per_title_ladder_on_kafka_cassandra_and_s3(servers: Settings, unique: str, tmp_path: Path) -> None:
    runtime = Runtime(servers)
    title = f"pt-{unique}"
    master = make_master(tmp_path / "film.mp4", seconds=4, languages=("en",))
    metadata = write_metadata(tmp_path / "title.json", title_metadata(title, master, languages=("en",)))
    since_ms = int(time.time() * 1000) - 1000
    result = IngestService(runtime, LADDER).ingest(master, metadata)

    kinds = {e.type: e for e in title_events(runtime, title, since_ms)}
    analyzed, chosen, planned = kinds["TitleComplexityAnalyzed"], kinds["TitleLadderChosen"], kinds["TranscodePlanned"]
    assert chosen["mode"] == "PER_TITLE" and chosen["analysis_event_id"] == analyzed.event_id
    assert analyzed["metric"] == "SSIM" and analyzed["points"]
    rungs = chosen["rungs"]
    assert 8 <= len(rungs) <= 12 and rungs[0]["height"] == 144 and all(r["cap_kbps"] <= 600 for r in rungs)
    assert replay_differences(analyzed.data, chosen.data) == []  # the decision follows from the recorded points
    ids = [r["rendition_id"] for r in rungs]
    assert [r["rendition_id"] for r in planned["renditions"]] == ids == result.renditions
    assert [r["bitrate_kbps"] for r in planned["renditions"]] == [r["cap_kbps"] for r in rungs]

    transcode_with_fleet(runtime, servers, title, tmp_path, timeout_s=300)

    completed = [e for e in title_events(runtime, title, since_ms) if e.type == "RenditionCompleted"]
    assert sorted(e["rendition_id"] for e in completed) == sorted(ids)
    stored = {o.key.split("/")[3] for o in runtime.objects.list(f"titles/{title}/renditions/")}
    assert stored == set(ids)
    for rendition in ids:
        files = []
        for key in sorted(o.key for o in runtime.objects.list(f"titles/{title}/renditions/{rendition}/chunks/")):
            files.append(tmp_path / key)
            runtime.objects.download(key, files[-1])
        assert len(files) == 2
        listing = tmp_path / f"{rendition}.txt"
        listing.write_text("".join(f"file '{f}'\n" for f in files))
        decode = subprocess.run([tools.ffmpeg(), "-nostdin", "-v", "error", "-f", "concat", "-safe", "0", "-i",
                                 str(listing), "-f", "framemd5", "-"], capture_output=True, text=True, check=False)
        assert decode.returncode == 0 and decode.stderr == ""
        assert len([line for line in decode.stdout.splitlines() if not line.startswith("#")]) == 96
        assert count_frames(files[0]) == 48
    runtime.close()
