"""Extract compact recorded shapes from the ruby-openai VCR cassettes into
tests/fixtures/emulator/recorded_shapes.json (tests never read the cassettes themselves).

Usage: python scripts/emulator_fixtures.py [RECORDINGS_DIR]"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "tests" / "fixtures" / "emulator" / "recorded_shapes.json"

# name -> (cassette, interaction index, beta header it was recorded with)
SOURCES = {
    "assistant_v2": ("assistants_create.yml", -1),
    "thread_v2": ("threads_create.yml", -1),
    "message_v2": ("messages_create.yml", -1),
    "run_v2": ("runs_create.yml", -1),
    "run_v1": ("runs_create.yml", 1),
    "run_list_v2": ("runs_list.yml", -1),
    "file": ("files_upload_file.yml", -1),
    "vector_store": ("vector_stores_create.yml", -1),
    "vector_store_file": ("vector_store_files_create.yml", -1),
    "file_batch": ("vector_store_file_batches_create.yml", -1),
    "search_page": ("vector_stores_search.yml", -1),
    "error_404_step": ("run_steps_retrieve.yml", -1),
    "error_400_invalid_thread": ("runs_create.yml", 3),
}
STREAM = ("runs_streamed_create.yml", -1)


def interaction(recordings: Path, cassette: str, index: int) -> dict:
    data = yaml.safe_load((recordings / cassette).read_text())
    return data["http_interactions"][index]


def main(recordings: Path) -> None:
    shapes: dict[str, object] = {}
    for name, (cassette, index) in SOURCES.items():
        it = interaction(recordings, cassette, index)
        shapes[name] = {
            "source": f"{cassette}#{index}",
            "beta": (it["request"]["headers"].get("Openai-Beta") or [None])[0],
            "status": it["response"]["status"]["code"],
            "body": json.loads(it["response"]["body"]["string"]),
        }
    it = interaction(recordings, *STREAM)
    events = []
    for block in it["response"]["body"]["string"].split("\n\n"):
        lines = dict(line.split(": ", 1) for line in block.strip().splitlines() if ": " in line)
        if "event" in lines:
            data = lines["data"]
            events.append({"event": lines["event"], "data": data if data == "[DONE]" else json.loads(data)})
    # keep one of each event name (the deltas repeat)
    seen, compact = set(), []
    for ev in events:
        if ev["event"] not in seen:
            seen.add(ev["event"])
            compact.append(ev)
    shapes["stream_v2"] = {"source": f"{STREAM[0]}#{STREAM[1]}", "event_names": [e["event"] for e in events],
                           "first_of_each": compact}
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(shapes, indent=1) + "\n")
    print(f"wrote {OUT.relative_to(ROOT)} ({OUT.stat().st_size} bytes)")


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT.parent / "shared" / "recordings" / "ruby-openai")
